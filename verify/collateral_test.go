package verify_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

// counting wraps a handler and counts requests.
type counting struct {
	h http.Handler
	n atomic.Int64
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

// simTDX makes a new key of alg and a sim-tdx quote binding it (the TD's
// RTMR3 from workload) in a new state directory.
func simTDX(t testing.TB, alg keys.Alg, workload [][]byte) (dir string, q []byte, k *keys.PrivateKey) {
	t.Helper()
	dir = t.TempDir()
	p, err := simtee.NewTDX(dir, simtee.Options{Workload: workload})
	if err != nil {
		t.Fatal(err)
	}
	q, k = simQuote(t, p, alg)
	return dir, q, k
}

// simSNP makes a new key of alg and a sim-sev-snp report binding it in a
// new state directory.
func simSNP(t testing.TB, alg keys.Alg) (dir string, q []byte, k *keys.PrivateKey) {
	t.Helper()
	dir = t.TempDir()
	p, err := simtee.NewSNP(dir, simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, k = simQuote(t, p, alg)
	return dir, q, k
}

// simQuote makes a new key of alg and p's quote binding it.
func simQuote(t testing.TB, p interface {
	Quote(context.Context, [64]byte) (*quote.Evidence, error)
}, alg keys.Alg) ([]byte, *keys.PrivateKey) {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Quote(context.Background(), k.Public().ReportData())
	if err != nil {
		t.Fatal(err)
	}
	return quote.Encode(ev.Kind, ev.Raw), k
}

func simTDXQuote(t testing.TB) (dir string, q, msg, sig []byte) {
	t.Helper()
	dir, q, k := simTDX(t, keys.Ed25519, nil)
	msg = []byte("collateral")
	return dir, q, msg, k.Sign(msg)
}

func trusted(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := verify.ParseCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTDXCollateral(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	run := func(pcsOpts simtee.PCSOptions, pol *validate.Policy, cache string, now time.Time) (*verify.Result, int64) {
		t.Helper()
		pcs, err := simtee.NewPCS(dir, pcsOpts)
		if err != nil {
			t.Fatal(err)
		}
		srv := &counting{h: pcs}
		ts := httptest.NewServer(srv)
		defer ts.Close()
		res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{
			KeyType: "ed25519", TrustedCerts: roots, Policy: pol, AnyWorkload: true, Now: now,
			Collateral: &verify.CollateralSource{PCCSURL: ts.URL, CacheDir: cache, Retries: -1},
		})
		if err != nil {
			t.Fatal(err)
		}
		return res, srv.n.Load()
	}
	cache := t.TempDir()
	res, n := run(simtee.PCSOptions{}, nil, cache, time.Time{})
	if !res.Valid || status(res)["tcb_status"] != "pass" || res.TCBStatus != "UpToDate" || n != 4 {
		t.Fatalf("UpToDate: %d requests, %+v %s", n, res.Checks, res.TCBStatus)
	}
	// Cache hit: nothing is fetched again.
	res, n = run(simtee.PCSOptions{}, nil, cache, time.Time{})
	if !res.Valid || n != 0 {
		t.Fatalf("cached run made %d requests: %+v", n, res.Checks)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 4 {
		t.Fatalf("cache holds %d entries, want 4", len(entries))
	}
	// Past nextUpdate (30 days by default) the cache is stale and the
	// collateral expired: everything is fetched again.
	later := time.Now().Add(31 * 24 * time.Hour)
	_, n = run(simtee.PCSOptions{NextUpdate: later.Add(time.Hour)}, nil, cache, later)
	if n != 4 {
		t.Fatalf("after nextUpdate: %d requests, want 4", n)
	}

	// A revoked PCK certificate fails tcb_status.
	res, _ = run(simtee.PCSOptions{RevokePCK: true}, nil, "", time.Time{})
	if tc := byName(res, "tcb_status"); res.Valid || tc.Status != "fail" || !slices.Equal(tc.Rules, []string{verify.RuleRevocation}) {
		t.Fatalf("revoked PCK: %+v", res.Checks)
	}
}

// Each TCB status is reported by name, for the platform and for the QE,
// and passes only when the policy accepts it; accepting one skips no check.
func TestTDXCollateralStatusByName(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	run := func(pcsOpts simtee.PCSOptions, accepted ...string) *verify.Result {
		t.Helper()
		pcs, err := simtee.NewPCS(dir, pcsOpts)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(pcs)
		defer ts.Close()
		res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{
			KeyType: "ed25519", TrustedCerts: roots, Policy: &validate.Policy{AcceptedTCBStatus: accepted}, AnyWorkload: true,
			Collateral: &verify.CollateralSource{PCCSURL: ts.URL, Retries: -1},
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, st := range []string{"UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"} {
		for _, who := range []string{"platform", "QE"} {
			o := simtee.PCSOptions{TCBStatus: st}
			if who == "QE" {
				o = simtee.PCSOptions{QEStatus: st}
			}
			res := run(o)
			tc := byName(res, "tcb_status")
			if got := map[string]string{"platform": res.TCBStatus, "QE": res.QEStatus}[who]; got != st {
				t.Errorf("%s %s: reported as %q", who, st, got)
			}
			if (st == "UpToDate") != res.Valid || (st != "UpToDate" && !slices.Equal(tc.Rules, []string{verify.RuleTCBStatus})) {
				t.Errorf("%s %s by default: valid %v, %+v", who, st, res.Valid, tc)
			}
			if res := run(o, "UpToDate", st); !res.Valid {
				t.Errorf("%s %s accepted by the policy: %+v", who, st, res.Checks)
			}
		}
	}
	// Revoked is reported by name and never accepted.
	res := run(simtee.PCSOptions{TCBStatus: "Revoked"})
	if res.Valid || res.TCBStatus != "Revoked" {
		t.Fatalf("Revoked: %+v", res.Checks)
	}
	// go-tdx-guest stops at a status other than UpToDate before it compares
	// the QE report with the QE identity: with OutOfDate accepted, a QE
	// identity the QE does not match must still fail, naming the QE check.
	wrong := make([]byte, 32)
	for _, st := range []string{"UpToDate", "OutOfDate"} {
		res := run(simtee.PCSOptions{TCBStatus: st, QEMRSigner: wrong}, "UpToDate", "OutOfDate")
		tc := byName(res, "tcb_status")
		if res.Valid || tc.Status != "fail" || !slices.Equal(tc.Rules, []string{verify.RuleQEIdentity}) || !strings.Contains(tc.Reason, "MRSIGNER") {
			t.Errorf("TCB %s, QE identity of another signer: valid %v, %+v", st, res.Valid, tc)
		}
	}
}

func TestCollateralServerDownIsAClearErrorNotAHang(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	// A server that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// And one that refuses: a closed port.
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String()
	closed.Close()
	for name, url := range map[string]string{"hanging": "http://" + ln.Addr().String(), "refusing": closedURL} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		done := make(chan *verify.Result, 1)
		go func() {
			res, _ := verify.Verify(ctx, q, msg, sig, verify.Options{KeyType: "ed25519", TrustedCerts: roots, AnyWorkload: true,
				Collateral: &verify.CollateralSource{PCCSURL: url, Timeout: 200 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond}})
			done <- res
		}()
		select {
		case res := <-done:
			if res.Valid || status(res)["tcb_status"] != "fail" || !strings.Contains(res.Checks[2].Reason, "fetch collateral") {
				t.Fatalf("%s: %+v", name, res.Checks)
			}
		case <-ctx.Done():
			t.Fatalf("%s: verification hung", name)
		}
		cancel()
	}
}

func TestCollateralRetriesThrottling(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	pcs, _ := simtee.NewPCS(dir, simtee.PCSOptions{})
	var calls atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 { // every first try is throttled, as KDS does
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		pcs.ServeHTTP(w, r)
	}))
	defer ts.Close()
	res, _ := verify.Verify(context.Background(), q, msg, sig, verify.Options{KeyType: "ed25519", TrustedCerts: roots, AnyWorkload: true,
		Collateral: &verify.CollateralSource{PCCSURL: ts.URL, Backoff: 5 * time.Millisecond}})
	if !res.Valid || calls.Load() != 8 {
		t.Fatalf("%d calls: %+v", calls.Load(), res.Checks)
	}
}

func TestSNPCollateralFromKDS(t *testing.T) {
	dir, q, k := simSNP(t, keys.Secp256k1)
	msg := []byte("snp")
	sig := k.Sign(msg)
	certs := trusted(t, filepath.Join(dir, simtee.SNPRootFile))
	for _, revoke := range []bool{false, true} {
		kds, err := simtee.NewKDS(dir, revoke)
		if err != nil {
			t.Fatal(err)
		}
		srv := &counting{h: kds}
		ts := httptest.NewServer(srv)
		// Only ARK and ASK: the VCEK comes from the (simulated) KDS.
		res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{TrustedCerts: certs[:2], AnyWorkload: true,
			Collateral: &verify.CollateralSource{KDSURL: ts.URL, Retries: -1}})
		ts.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !revoke && (!res.Valid || srv.n.Load() < 2) {
			t.Fatalf("KDS: %d requests, %+v", srv.n.Load(), res.Checks)
		}
		if revoke && (res.Valid || status(res)["tcb_status"] != "fail") {
			t.Fatalf("revoked ASK: %+v", res.Checks)
		}
	}
}

// 20 concurrent forged SEV-SNP reports against a KDS stand-in make at most
// one request per distinct URL: the verifications share one request in
// flight per URL and its response.
func TestForgedReportFloodFetchesOncePerURL(t *testing.T) {
	dir := t.TempDir()
	p, err := simtee.NewSNP(dir, simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keys.Generate(keys.Ed25519)
	ev, err := p.Quote(context.Background(), k.Public().ReportData())
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte{}, ev.Raw...)
	forged[0x2A0+7] ^= 0xff // the signature
	kds, err := simtee.NewKDS(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	perURL := map[string]int{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		perURL[r.URL.String()]++
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // a slow KDS: the flood arrives while the first fetch is in flight
		kds.ServeHTTP(w, r)
	}))
	defer ts.Close()
	src := &verify.CollateralSource{KDSURL: ts.URL, Retries: -1}
	certs := trusted(t, filepath.Join(dir, simtee.SNPRootFile))[:2] // ARK and ASK: the VCEK comes from KDS
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := verify.Verify(context.Background(), forged, []byte("m"), k.Sign([]byte("m")), verify.Options{KeyType: "ed25519", AnyWorkload: true, TrustedCerts: certs, Collateral: src})
			if err != nil || res.Valid || status(res)["quote_signature"] != "fail" {
				t.Errorf("forged report: %v %+v", err, res)
			}
		}()
	}
	wg.Wait()
	if len(perURL) == 0 {
		t.Fatal("nothing was fetched")
	}
	for u, n := range perURL {
		if n > 1 {
			t.Errorf("%s fetched %d times", u, n)
		}
	}
}

// A quote that is not authentic (a flipped byte, or no trusted root) gets
// tcb_status "skipped" and costs no collateral request: a flood of forged
// quotes cannot make the verifier fetch.
func TestInauthenticQuoteFetchesNoCollateral(t *testing.T) {
	dir, q, msg, sig := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	pcs, err := simtee.NewPCS(dir, simtee.PCSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := &counting{h: pcs}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	raw, _, _ := quote.Decode(q)
	forged := append([]byte(nil), raw...)
	forged[48+136] ^= 1 // MRTD
	for name, c := range map[string]struct {
		q     []byte
		roots []*x509.Certificate
		check string
	}{
		"flipped MRTD byte": {forged, roots, "quote_signature"},
		"untrusted root":    {raw, nil, "cert_chain"},
	} {
		res, err := verify.Verify(context.Background(), c.q, msg, sig, verify.Options{KeyType: "ed25519", TrustedCerts: c.roots, AnyWorkload: true,
			Collateral: &verify.CollateralSource{PCCSURL: ts.URL, Retries: -1}})
		if err != nil {
			t.Fatal(err)
		}
		tc := byName(res, "tcb_status")
		if c.check == "cert_chain" && status(res)["quote_signature"] != "pass" {
			t.Fatalf("%s: a genuine quote under an untrusted root fails quote_signature: %+v", name, res.Checks)
		}
		if res.Valid || status(res)[c.check] != "fail" || tc.Status != "skipped" || tc.Reason != "the quote is not authentic" || srv.n.Load() != 0 {
			t.Fatalf("%s: valid %v, %s %s, tcb_status %+v, %d collateral requests", name, res.Valid, c.check, status(res)[c.check], tc, srv.n.Load())
		}
	}
}
