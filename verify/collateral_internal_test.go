package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A Retry-After of 0 to 60 seconds is honoured; anything else (negative,
// over a minute, not a number, absent) falls back to the backoff.
func TestRetryAfterBounds(t *testing.T) {
	for v, want := range map[string]time.Duration{"0": 0, "1": time.Second, "60": time.Minute, "61": -1, "-1": -1, "x": -1, "": -1, "3600": -1} {
		h := map[string][]string{}
		if v != "" {
			h["Retry-After"] = []string{v}
		}
		got, ok := retryAfter(h)
		if (want < 0) == ok || (ok && got != want) {
			t.Errorf("Retry-After %q: %v %v, want %v", v, got, ok, want)
		}
	}
}

// A cached collateral document serves until just before its nextUpdate,
// from memory and from disk; at nextUpdate it is fetched again.
func TestCachedCollateralExpiresAtNextUpdate(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CRL issuer"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	issuer, _ := x509.ParseCertificate(der)
	next := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: next}, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetches.Add(1); w.Write(crl) }))
	defer ts.Close()
	u := IntelPCSURL + "/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
	dir := t.TempDir()
	get := func(src *CollateralSource, now time.Time) {
		t.Helper()
		if _, _, err := newFetcher(context.Background(), src, now).GetContext(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	shared := &CollateralSource{PCCSURL: ts.URL, CacheDir: dir, Retries: -1}
	get(shared, time.Now())
	for name, c := range map[string]struct {
		src     *CollateralSource
		now     time.Time
		fetched int64
	}{
		"memory, just before nextUpdate": {shared, next.Add(-time.Nanosecond), 0},
		"disk, just before nextUpdate":   {&CollateralSource{PCCSURL: ts.URL, CacheDir: dir, Retries: -1}, next.Add(-time.Nanosecond), 0},
		"memory, at nextUpdate":          {shared, next, 1},
		"disk, at nextUpdate":            {&CollateralSource{PCCSURL: ts.URL, CacheDir: dir, Retries: -1}, next, 1},
	} {
		before := fetches.Load()
		get(c.src, c.now)
		if got := fetches.Load() - before; got != c.fetched {
			t.Errorf("%s: %d fetches, want %d", name, got, c.fetched)
		}
	}
}
