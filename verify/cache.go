package verify

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/teesign/teesign/internal/keys"
)

// VerdictCache remembers the verdict on a quote (every check but the
// signature's) so that messages signed under one quote cost one signature
// verification each, across calls. An entry is keyed by the quote's digest
// and every input that decides the verdict (key type, expected public key,
// policy, workload and registry, AnyWorkload, trusted certificates, AMD
// roles, certificate table, offline or the collateral services); it is
// used only for verification times in the window where everything it
// relied on is current: the certificates' validity and, online, the
// collateral's issue date to nextUpdate. Only verdicts on authentic quotes
// whose collateral was read are kept: a failure to fetch is never
// remembered.
//
// A VerdictCache is safe for concurrent use; its zero value is not: use
// NewVerdictCache.
type VerdictCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // front: most recently used
	entries map[[32]byte]*list.Element
	// inflight: quotes being checked now; others with the same key wait
	// for the verdict rather than check the quote again.
	inflight map[[32]byte]chan struct{}
	hits     int64
	misses   int64
}

type verdict struct {
	key        [32]byte
	from, till time.Time
	res        *Result
	pub        *keys.PublicKey
	failed     bool
}

// NewVerdictCache returns a cache of at most max verdicts (the least
// recently used go first); max <= 0 means 1024.
func NewVerdictCache(max int) *VerdictCache {
	if max <= 0 {
		max = 1024
	}
	return &VerdictCache{max: max, order: list.New(), entries: map[[32]byte]*list.Element{}, inflight: map[[32]byte]chan struct{}{}}
}

// Stats returns how many verifications used a cached verdict (hits) and
// how many checked the quote in full (misses).
func (c *VerdictCache) Stats() (hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// lookup returns the verdict for key valid at now, or nil when the caller
// must check the quote; it must then call release(key) when done (after
// put, if the verdict is kept). While one caller checks a quote, others
// with the same key wait for it.
func (c *VerdictCache) lookup(ctx context.Context, key [32]byte, now time.Time) (*verdict, error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[key]; ok {
			v := e.Value.(*verdict)
			if !now.Before(v.from) && now.Before(v.till) {
				c.order.MoveToFront(e)
				c.hits++
				c.mu.Unlock()
				return v, nil
			}
			if !now.Before(v.till) { // expired for good
				c.order.Remove(e)
				delete(c.entries, key)
			}
		}
		wait, busy := c.inflight[key]
		if !busy {
			c.inflight[key] = make(chan struct{})
			c.misses++
			c.mu.Unlock()
			return nil, nil
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release ends the check of key that lookup asked for.
func (c *VerdictCache) release(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.inflight[key]; ok {
		close(ch)
		delete(c.inflight, key)
	}
}

func (c *VerdictCache) put(v *verdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[v.key]; ok {
		c.order.Remove(e)
	}
	c.entries[v.key] = c.order.PushFront(v)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*verdict).key)
	}
}

// verdictKey digests the quote and every option that decides the checks
// before the signature's. The verification time is not in it: entries
// carry their validity window instead.
func verdictKey(raw []byte, o *Options, alg keys.Alg, wantKey *keys.PublicKey) ([32]byte, bool) {
	h := sha256.New()
	field := func(name string, b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write([]byte(name))
		h.Write(n[:])
		h.Write(b)
	}
	field("quote", raw)
	field("alg", []byte(alg))
	if wantKey != nil {
		field("pub", wantKey.Bytes())
	}
	if o.Policy != nil {
		p, err := json.Marshal(o.Policy, json.Deterministic(true))
		if err != nil {
			return [32]byte{}, false
		}
		field("policy", p)
	}
	if o.Workload != nil {
		tdx, snp, err := o.Workload.Registry.Files()
		if err != nil {
			return [32]byte{}, false
		}
		field("registry-tdx", tdx)
		field("registry-snp", snp)
		field("compose", o.Workload.Workload.Compose)
		field("docker-files", o.Workload.Workload.DockerFilesSHA256)
	}
	if o.AnyWorkload {
		field("any", nil)
	}
	certs := func(name string, cs ...*x509.Certificate) {
		for _, c := range cs {
			if c != nil {
				field(name, c.Raw)
			}
		}
	}
	certs("trusted", o.TrustedCerts...)
	certs("ark", o.AMD.ARK)
	certs("ask", o.AMD.ASK)
	certs("vcek", o.AMD.VCEK)
	field("cert-table", o.CertTable)
	if o.Offline {
		field("offline", nil)
	} else {
		src := o.Collateral
		if src == nil {
			src = &CollateralSource{}
		}
		field("pccs", []byte(src.PCCSURL))
		field("kds", []byte(src.KDSURL))
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k, true
}

// span is a time window [from, till).
type span struct{ from, till time.Time }

// narrow returns the part of s within o (a zero bound does not narrow).
func (s span) narrow(o span) span {
	if s.from.IsZero() || o.from.After(s.from) {
		s.from = o.from
	}
	if s.till.IsZero() || (!o.till.IsZero() && o.till.Before(s.till)) {
		s.till = o.till
	}
	return s
}

// certSpan is the window in which every certificate given is valid.
func certSpan(certs ...*x509.Certificate) span {
	var s span
	for _, c := range certs {
		if c != nil {
			s = s.narrow(span{c.NotBefore, c.NotAfter})
		}
	}
	return s
}

// collateralSpan returns the window in which everything the fetcher read
// is current: issue dates to nextUpdates, and the certificates' validity
// (the issuer chains in headers included). ok is false when something read
// has no window teesign can tell.
func (f *fetcher) collateralSpan() (s span, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.memo {
		w, known := window(m.body)
		if !known {
			return span{}, false
		}
		s = s.narrow(w)
		for name, vals := range m.header {
			if !strings.HasSuffix(strings.ToLower(name), "issuer-chain") {
				continue
			}
			for _, v := range vals {
				pemText, err := url.QueryUnescape(v)
				if err != nil {
					return span{}, false
				}
				chain, err := ParseCerts([]byte(pemText))
				if err != nil {
					return span{}, false
				}
				s = s.narrow(certSpan(chain...))
			}
		}
	}
	return s, true
}
