package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The verdict cache keeps its max entries, dropping the least recently
// used first.
func TestVerdictCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := NewVerdictCache(2)
	now := time.Now()
	put := func(b byte) {
		c.put(&verdict{key: [32]byte{b}, from: now.Add(-time.Hour), till: now.Add(time.Hour), res: &Result{}})
	}
	put(1)
	put(2)
	if v, _ := c.lookup(context.Background(), [32]byte{1}, now); v == nil { // 1 is now the most recent
		t.Fatal("entry 1 missing")
	}
	put(3)
	if len(c.entries) != 2 || c.entries[[32]byte{2}] != nil || c.entries[[32]byte{1}] == nil || c.entries[[32]byte{3}] == nil {
		t.Fatalf("after a third entry in a cache of 2: %d entries", len(c.entries))
	}
}

// A body of hex text (as a PCCS serves the root CA's CRL) is decoded; any
// other body passes unchanged.
func TestMaybeHex(t *testing.T) {
	for in, want := range map[string]string{
		"0a":       "\x0a",
		"0A0b\n":   "\x0a\x0b",
		"":         "",
		"0":        "0",
		"0a0":      "0a0",
		"zz":       "zz",
		"0x0a":     "0x0a",
		"\x30\x82": "\x30\x82",
	} {
		if got := string(maybeHex([]byte(in))); got != want {
			t.Errorf("maybeHex(%q) = %q, want %q", in, got, want)
		}
	}
}

// The window of each kind of collateral document: issue date to
// nextUpdate, this update to next update, NotBefore to NotAfter, the
// common window of a PEM chain; none for anything else.
func TestCollateralWindows(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	cert := func(nb, na time.Time) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		c, _ := x509.ParseCertificate(der)
		return c
	}
	a, b := cert(t0, t0.Add(10*time.Hour)), cert(t0.Add(time.Hour), t0.Add(5*time.Hour))
	crl, _ := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.Add(2 * time.Hour)}, a, key)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Raw})...)
	js := func(k string) []byte {
		return []byte(`{"` + k + `":{"issueDate":"` + t0.Format(time.RFC3339) + `","nextUpdate":"` + t0.Add(3*time.Hour).Format(time.RFC3339) + `"}}`)
	}
	for name, c := range map[string]struct {
		body []byte
		want span
		ok   bool
	}{
		"CRL":              {crl, span{t0, t0.Add(2 * time.Hour)}, true},
		"certificate":      {a.Raw, span{t0, t0.Add(10 * time.Hour)}, true},
		"PEM chain":        {chain, span{t0.Add(time.Hour), t0.Add(5 * time.Hour)}, true},
		"TCB info":         {js("tcbInfo"), span{t0, t0.Add(3 * time.Hour)}, true},
		"QE identity":      {js("enclaveIdentity"), span{t0, t0.Add(3 * time.Hour)}, true},
		"other JSON":       {[]byte(`{"x":1}`), span{}, false},
		"neither JSON nor": {[]byte("garbage"), span{}, false},
	} {
		got, ok := window(c.body)
		if ok != c.ok || !got.from.Equal(c.want.from) || !got.till.Equal(c.want.till) {
			t.Errorf("%s: %v %v, want %v %v", name, got, ok, c.want, c.ok)
		}
	}
}

// A CollateralSource's documented defaults: 10 s timeout, 3 retries
// (negative: none), 1 s first backoff, failures remembered 30 s.
func TestCollateralDefaults(t *testing.T) {
	f := newFetcher(context.Background(), &CollateralSource{}, time.Now())
	if f.src.Timeout != 10*time.Second || f.src.Retries != 3 || f.src.Backoff != time.Second || f.ttl != 30*time.Second {
		t.Fatalf("defaults: %+v ttl %v", f.src, f.ttl)
	}
	f = newFetcher(context.Background(), &CollateralSource{Retries: -1, FailureTTL: 5 * time.Second, Timeout: time.Second, Backoff: time.Millisecond}, time.Now())
	if f.src.Retries != 0 || f.ttl != 5*time.Second || f.src.Timeout != time.Second || f.src.Backoff != time.Millisecond {
		t.Fatalf("given: %+v ttl %v", f.src, f.ttl)
	}
}

// A Retry-After longer than the backoff is waited for.
func TestRetryAfterLongerThanBackoffIsHonoured(t *testing.T) {
	var calls atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer ts.Close()
	f := newFetcher(context.Background(), &CollateralSource{PCCSURL: ts.URL, Backoff: time.Millisecond}, time.Now())
	start := time.Now()
	if _, _, err := f.fetch(context.Background(), ts.URL+"/x"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond || calls.Load() != 2 {
		t.Fatalf("waited %v over %d calls, want the 1 s Retry-After", waited, calls.Load())
	}
}

// The first request goes out at once: the backoff is only between retries.
func TestFirstFetchDoesNotWaitForTheBackoff(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer ts.Close()
	f := newFetcher(context.Background(), &CollateralSource{PCCSURL: ts.URL, Backoff: time.Hour}, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, b, err := f.fetch(ctx, ts.URL+"/x"); err != nil || string(b) != "ok" {
		t.Fatalf("first fetch with a one-hour backoff: %q, %v", b, err)
	}
}
