package verify_test

import (
	"context"
	"encoding/hex"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

// The verdict cache: the second verification of a quote with the same
// inputs skips the quote's checks and fetches nothing; once the
// collateral it used has expired the quote is checked in full again;
// different trust inputs never reuse a verdict; a bad signature is still
// found on a cached quote.
func TestVerdictCache(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	now := time.Now()
	pcs, err := simtee.NewPCS(dir, simtee.PCSOptions{NextUpdate: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &counting{h: pcs}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cache := verify.NewVerdictCache(0)
	opts := func(at time.Time) verify.Options {
		return verify.Options{KeyType: "ed25519", TrustedCerts: roots, AnyWorkload: true, Now: at, Cache: cache,
			Collateral: &verify.CollateralSource{PCCSURL: ts.URL, Retries: -1}}
	}
	check := func(name string, o verify.Options, message []byte, valid bool, hits, misses, fetches int64) {
		t.Helper()
		before := srv.n.Load()
		res, err := verify.Verify(context.Background(), q, message, sig, o)
		if err != nil {
			t.Fatal(err)
		}
		h, m := cache.Stats()
		if res.Valid != valid || h != hits || m != misses || srv.n.Load()-before != fetches {
			t.Fatalf("%s: valid %v (want %v), cache hits %d misses %d (want %d, %d), %d fetches (want %d): %+v",
				name, res.Valid, valid, h, m, hits, misses, srv.n.Load()-before, fetches, res.Checks)
		}
	}
	check("first", opts(now), msg, true, 0, 1, 4)
	check("same quote and inputs", opts(now.Add(time.Minute)), msg, true, 1, 1, 0)
	check("another message, bad signature", opts(now.Add(time.Minute)), []byte("other"), false, 2, 1, 0)
	// Past the collateral's nextUpdate: checked in full, collateral fetched
	// anew (and found expired: the simulated PCS still serves the old).
	check("collateral expired", opts(now.Add(2*time.Hour)), msg, false, 2, 2, 4)
	// Different trust inputs: never the cached verdict.
	o := opts(now.Add(time.Minute))
	o.TrustedCerts = nil
	check("no trusted root", o, msg, false, 2, 3, 0)
	o = opts(now.Add(time.Minute))
	o.Collateral = &verify.CollateralSource{PCCSURL: ts.URL + "/", Retries: -1}
	check("another collateral service", o, msg, true, 2, 4, 4)
	o = opts(now.Add(time.Minute))
	o.Policy = &validate.Policy{AcceptedTCBStatus: []string{"UpToDate", "OutOfDate"}}
	check("another policy", o, msg, true, 2, 5, 4)
	o = opts(now.Add(time.Minute))
	o.AnyWorkload = false
	check("nothing pinned", o, msg, false, 2, 6, 4)
	// Before the verdict was made: not reused.
	check("an earlier time", opts(now.Add(-time.Minute)), msg, true, 2, 7, 4)
	// Two policies that pin different workloads never share a verdict: the
	// one that does not match the quote fails after the one that does.
	raw, _, _ := quote.Decode(q)
	_, fields, _ := quote.Parse(raw)
	mrtd := func(v string) *validate.Policy {
		b, _ := hex.DecodeString(v)
		return &validate.Policy{TDX: &validate.TDXPolicy{MRTD: []validate.Hex{b}}}
	}
	o = opts(now)
	o.Offline, o.Collateral, o.AnyWorkload = true, nil, false
	o.Policy = mrtd(fields["mr_td"].(string))
	if res, err := verify.Verify(context.Background(), q, msg, sig, o); err != nil || !res.Valid {
		t.Fatalf("pinned to its own MRTD: %v %+v", err, res)
	}
	o.Policy = mrtd(strings.Repeat("00", 48))
	if res, err := verify.Verify(context.Background(), q, msg, sig, o); err != nil || res.Valid {
		t.Fatalf("pinned to another MRTD after a verdict for its own: %v valid=%v", err, res.Valid)
	}
	h0, m0 := cache.Stats()
	// Offline verdicts last until a certificate expires.
	o = opts(now)
	o.Offline, o.Collateral = true, nil
	check("offline", o, msg, true, h0, m0+1, 0)
	o.Now = now.Add(24 * time.Hour)
	check("offline, later", o, msg, true, h0+1, m0+1, 0)
	o.Now = now.Add(100 * 365 * 24 * time.Hour)
	check("offline, past the certificates", o, msg, false, h0+1, m0+2, 0)
}

// Verifications of one quote at the same time check it once: the others
// wait for its verdict.
func TestVerdictCacheConcurrent(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	cache := verify.NewVerdictCache(0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{KeyType: "ed25519", TrustedCerts: roots, AnyWorkload: true, Offline: true, Cache: cache})
			if err != nil || !res.Valid {
				t.Errorf("%v %+v", err, res)
			}
		}()
	}
	wg.Wait()
	if hits, misses := cache.Stats(); hits != 7 || misses != 1 {
		t.Fatalf("8 verifications at once: %d hits, %d misses; want 7 and 1", hits, misses)
	}
}
