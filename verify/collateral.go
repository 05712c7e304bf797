package verify

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/teesign/teesign/internal/atomicfile"
)

// Collateral services' default addresses.
const (
	IntelPCSURL = "https://api.trustedservices.intel.com"
	intelCRLURL = "https://certificates.trustedservices.intel.com"
	AMDKDSURL   = "https://kdsintf.amd.com"
)

// CollateralSource says where collateral comes from and how it is cached.
// The zero value fetches from Intel PCS and AMD KDS without a cache.
type CollateralSource struct {
	// PCCSURL replaces Intel PCS (https://api.trustedservices.intel.com)
	// with a PCCS or caching service at this base URL; Intel's root CRL is
	// then fetched from PCCSURL/sgx/certification/v4/rootcacrl.
	PCCSURL string
	// KDSURL replaces AMD KDS (https://kdsintf.amd.com).
	KDSURL string
	// CacheDir keeps responses on disk until their nextUpdate; "" disables
	// the cache.
	CacheDir string
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// Retries is how many times a failed request (network error, HTTP 429
	// as KDS throttles, 5xx) is retried with exponential backoff, honouring
	// Retry-After. 0 means the default, 3; negative means none.
	Retries int
	// Backoff is the first retry's delay (default 1s), doubled each time.
	Backoff time.Duration
	// Client makes the requests (default: an http.Client with Timeout).
	Client *http.Client
	// MaxConcurrent bounds the requests in flight at once for all the
	// verifications that share this source (default 4).
	MaxConcurrent int
	// FailureTTL is how long a failed request is remembered and its
	// error returned without asking again (default 30 s).
	FailureTTL time.Duration

	// shared is what verifications sharing this source share: one
	// request in flight per URL, the in-memory cache, remembered failures
	// and the concurrency bound; made on first use.
	sharedOnce sync.Once
	sharedSt   *shared
}

// shared fetch state of a CollateralSource.
type shared struct {
	flight singleflight.Group
	slots  chan struct{}
	mu     sync.Mutex
	ok     map[string]cached // responses, until they expire
	failed map[string]failure
}

type failure struct {
	err   error
	until time.Time
}

func (c *CollateralSource) state() *shared {
	c.sharedOnce.Do(func() {
		n := c.MaxConcurrent
		if n <= 0 {
			n = 4
		}
		c.sharedSt = &shared{slots: make(chan struct{}, n), ok: map[string]cached{}, failed: map[string]failure{}}
	})
	return c.sharedSt
}

// fetcher gets collateral URLs through a cache, with timeouts and retries.
// It implements the getters go-tdx-guest and go-sev-guest take.
// fetchConfig is a CollateralSource's settings, defaults applied.
type fetchConfig struct {
	PCCSURL, KDSURL, CacheDir string
	Timeout, Backoff          time.Duration
	Retries                   int
	Client                    *http.Client
}

type fetcher struct {
	src    fetchConfig
	shared *shared
	ttl    time.Duration
	ctx    context.Context
	now    func() time.Time

	// memo keeps this verification's responses, so that teesign's own
	// collateral checks read exactly what the libraries were given.
	mu   sync.Mutex
	memo map[string]memoEntry
}

type memoEntry struct {
	header map[string][]string
	body   []byte
}

func newFetcher(ctx context.Context, src *CollateralSource, now time.Time) *fetcher {
	if src == nil {
		src = &CollateralSource{}
	}
	sh := src.state()
	s := fetchConfig{PCCSURL: src.PCCSURL, KDSURL: src.KDSURL, CacheDir: src.CacheDir, Timeout: src.Timeout,
		Retries: src.Retries, Backoff: src.Backoff, Client: src.Client}
	ttl := src.FailureTTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.Retries == 0 {
		s.Retries = 3
	}
	s.Retries = max(s.Retries, 0) // negative: no retries
	if s.Backoff <= 0 {
		s.Backoff = time.Second
	}
	if s.Client == nil {
		s.Client = &http.Client{Timeout: s.Timeout}
	}
	return &fetcher{src: s, shared: sh, ttl: ttl, ctx: ctx, now: func() time.Time { return now }, memo: map[string]memoEntry{}}
}

// rewrite points Intel's and AMD's URLs at the configured services.
func (f *fetcher) rewrite(u string) string {
	if f.src.PCCSURL != "" {
		base := strings.TrimSuffix(f.src.PCCSURL, "/")
		if strings.HasPrefix(u, IntelPCSURL) {
			return base + strings.TrimPrefix(u, IntelPCSURL)
		}
		if strings.HasPrefix(u, intelCRLURL) {
			return base + "/sgx/certification/v4/rootcacrl"
		}
	}
	if f.src.KDSURL != "" && strings.HasPrefix(u, AMDKDSURL) {
		return strings.TrimSuffix(f.src.KDSURL, "/") + strings.TrimPrefix(u, AMDKDSURL)
	}
	return u
}

type cached struct {
	URL     string              `json:"url"`
	Header  map[string][]string `json:"header"`
	Body    []byte              `json:"body"`
	Expires time.Time           `json:"expires"`
}

func (f *fetcher) cachePath(u string) string {
	h := sha256.Sum256([]byte(u))
	return filepath.Join(f.src.CacheDir, hex.EncodeToString(h[:16])+".json")
}

// Get implements go-tdx-guest's trust.HTTPSGetter.
func (f *fetcher) Get(u string) (map[string][]string, []byte, error) {
	return f.GetContext(f.ctx, u)
}

// GetContext implements go-tdx-guest's trust.ContextHTTPSGetter.
// The cache is keyed by Intel's or AMD's URL, whichever service answers:
// collateral is signed, and checked after it comes out of the cache.
func (f *fetcher) GetContext(ctx context.Context, u string) (map[string][]string, []byte, error) {
	f.mu.Lock()
	m, ok := f.memo[u]
	f.mu.Unlock()
	if ok {
		return m.header, m.body, nil
	}
	header, body, err := f.getContext(ctx, u)
	if err == nil {
		f.mu.Lock()
		f.memo[u] = memoEntry{header, body}
		f.mu.Unlock()
	}
	return header, body, err
}

func (f *fetcher) getContext(ctx context.Context, u string) (map[string][]string, []byte, error) {
	if f.src.CacheDir != "" {
		if data, err := os.ReadFile(f.cachePath(u)); err == nil {
			var c cached
			if json.Unmarshal(data, &c) == nil && c.URL == u && f.now().Before(c.Expires) {
				return c.Header, c.Body, nil
			}
		}
	}
	header, body, err := f.fetchShared(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	if f.src.CacheDir != "" {
		if exp, ok := expiry(body); ok && f.now().Before(exp) {
			c, _ := json.Marshal(cached{URL: u, Header: header, Body: body, Expires: exp})
			if err := os.MkdirAll(f.src.CacheDir, 0o700); err == nil {
				atomicfile.Write(f.cachePath(u), c, 0o600) // a failed cache write only costs a refetch
			}
		}
	}
	return header, body, nil
}

// fetchShared fetches u once for every verification sharing the source:
// a response is kept in memory until it expires, one request is in flight
// per URL, at most MaxConcurrent at once, and a failure is remembered for
// FailureTTL. A flood of forged reports costs at most one request per
// distinct URL.
func (f *fetcher) fetchShared(ctx context.Context, u string) (map[string][]string, []byte, error) {
	sh := f.shared
	sh.mu.Lock()
	if c, ok := sh.ok[u]; ok && f.now().Before(c.Expires) {
		sh.mu.Unlock()
		return c.Header, c.Body, nil
	}
	if fl, ok := sh.failed[u]; ok && time.Now().Before(fl.until) {
		sh.mu.Unlock()
		return nil, nil, fmt.Errorf("%w (remembered for %v; not asked again)", fl.err, f.ttl)
	}
	sh.mu.Unlock()
	v, err, _ := sh.flight.Do(u, func() (any, error) {
		select {
		case sh.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-sh.slots }()
		header, body, err := f.fetch(ctx, f.rewrite(u))
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if err != nil {
			sh.failed[u] = failure{err: err, until: time.Now().Add(f.ttl)}
			return nil, err
		}
		delete(sh.failed, u)
		if exp, ok := expiry(body); ok && f.now().Before(exp) {
			sh.ok[u] = cached{URL: u, Header: header, Body: body, Expires: exp}
		}
		return cached{URL: u, Header: header, Body: body}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	c := v.(cached)
	return c.Header, c.Body, nil
}

// sevGetter adapts the fetcher to go-sev-guest's trust.HTTPSGetter.
type sevGetter struct{ f *fetcher }

func (g sevGetter) Get(u string) ([]byte, error) { return g.GetContext(g.f.ctx, u) }

func (g sevGetter) GetContext(ctx context.Context, u string) ([]byte, error) {
	_, b, err := g.f.GetContext(ctx, u)
	return b, err
}

func (f *fetcher) fetch(ctx context.Context, u string) (map[string][]string, []byte, error) {
	delay := f.src.Backoff
	var last error
	for attempt := 0; attempt <= f.src.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("fetch %s: %w (last error: %v)", u, ctx.Err(), last)
			case <-time.After(delay):
			}
			delay *= 2
		}
		rctx, cancel := context.WithTimeout(ctx, f.src.Timeout)
		header, body, retry, err := f.once(rctx, u)
		cancel()
		if err == nil {
			return header, body, nil
		}
		last = err
		if !retry {
			break
		}
		if ra, ok := retryAfter(header); ok {
			delay = max(delay, ra) // the service's wait, if longer
		}
	}
	return nil, nil, fmt.Errorf("fetch collateral %s: %w", u, last)
}

func (f *fetcher) once(ctx context.Context, u string) (map[string][]string, []byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, false, err
	}
	resp, err := f.src.Client.Do(req)
	if err != nil {
		return nil, nil, true, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.Header, nil, true, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.Header, maybeHex(body), false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return resp.Header, nil, true, fmt.Errorf("HTTP %s", resp.Status)
	}
	return resp.Header, nil, false, fmt.Errorf("HTTP %s", resp.Status)
}

func retryAfter(h map[string][]string) (time.Duration, bool) {
	v := http.Header(h).Get("Retry-After")
	if v == "" {
		return 0, false
	}
	s, err := strconv.Atoi(v)
	if err != nil || s < 0 || s > 60 {
		return 0, false
	}
	return time.Duration(s) * time.Second, true
}

// maybeHex decodes a body that is hex text (PCCS serves the root CA CRL
// as hex); other bodies pass unchanged.
func maybeHex(b []byte) []byte {
	s := strings.TrimSpace(string(b))
	if len(s) < 2 || len(s)%2 != 0 || strings.Trim(s, "0123456789abcdefABCDEF") != "" {
		return b
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return b
	}
	return d
}

// expiry returns when a response goes stale: its nextUpdate (TCB info, QE
// identity, CRL) or, for a certificate, its NotAfter. Other bodies are not
// cached.
func expiry(body []byte) (time.Time, bool) {
	w, ok := window(body)
	return w.till, ok
}

// window returns the time span in which a response is current: issue date
// to nextUpdate (TCB info, QE identity, CRL), NotBefore to NotAfter (a
// certificate, or the common span of a PEM chain).
func window(body []byte) (span, bool) {
	var j struct {
		TcbInfo         *struct{ IssueDate, NextUpdate time.Time } `json:"tcbInfo"`
		EnclaveIdentity *struct{ IssueDate, NextUpdate time.Time } `json:"enclaveIdentity"`
	}
	if json.Unmarshal(body, &j) == nil {
		switch {
		case j.TcbInfo != nil:
			return span{j.TcbInfo.IssueDate, j.TcbInfo.NextUpdate}, true
		case j.EnclaveIdentity != nil:
			return span{j.EnclaveIdentity.IssueDate, j.EnclaveIdentity.NextUpdate}, true
		}
		return span{}, false
	}
	if crl, err := x509.ParseRevocationList(body); err == nil {
		return span{crl.ThisUpdate, crl.NextUpdate}, !crl.NextUpdate.IsZero()
	}
	if c, err := x509.ParseCertificate(body); err == nil {
		return certSpan(c), true
	}
	if chain, err := ParseCerts(body); err == nil {
		return certSpan(chain...), true
	}
	return span{}, false
}

// Fetch gets one collateral document, u being its Intel PCS, Intel
// certificates or AMD KDS address, as verifications sharing c get it:
// from c's cache or the configured service, with c's timeouts, retries,
// deduplication and concurrency bound. It returns the response's headers
// (TCB info and QE identity carry their issuer chains there) and body. A
// service can serve what Fetch returns to verifiers that cannot reach
// Intel or AMD themselves (a browser): the documents are signed, and are
// checked where they are used.
func (c *CollateralSource) Fetch(ctx context.Context, u string) (map[string][]string, []byte, error) {
	if !strings.HasPrefix(u, IntelPCSURL+"/") && !strings.HasPrefix(u, intelCRLURL+"/") && !strings.HasPrefix(u, AMDKDSURL+"/") {
		return nil, nil, fmt.Errorf("collateral: %s is not an Intel PCS, Intel certificates or AMD KDS address", u)
	}
	return newFetcher(ctx, c, time.Now()).GetContext(ctx, u)
}

// IntelRootCRLURL is where Intel publishes the SGX Root CA's CRL.
const IntelRootCRLURL = intelCRLURL + "/IntelSGXRootCA.der"
