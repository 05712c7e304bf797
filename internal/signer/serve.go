package signer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/teesign/teesign/internal/graceful"
)

// Limits of the signing server.
const (
	// ReadHeaderTimeout bounds the request line and headers.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds a whole request, body included.
	ReadTimeout = 15 * time.Second
	// WriteTimeout bounds the response (a client that does not read it
	// loses the connection).
	WriteTimeout = 15 * time.Second
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout = 60 * time.Second
	// MaxHeaderBytes bounds a request's line and header fields (431 above).
	MaxHeaderBytes = 16 << 10
	// DefaultMaxConns caps open connections; more wait in the kernel's
	// listen backlog until one closes.
	DefaultMaxConns = 256
	// DefaultHeldBytes caps the request bytes held at once across all
	// connections; a request that cannot get its share within
	// DefaultHeldBytesWait (Config.HeldBytesWait) is answered 503.
	DefaultHeldBytes = 16 << 20
	// DefaultHeldBytesWait is how long a request waits for its share.
	DefaultHeldBytesWait = 5 * time.Second
	// refusing bounds the connections being refused at once; past it a
	// disallowed connection is closed without the 403.
	refusing = 64
)

// forbidden is the whole reply to a connection from a source that is not
// allowed: written before any byte of the request is read.
var forbidden = func() []byte {
	body := `{"error":"forbidden: this source address may not use the signing server"}` + "\n"
	return []byte(fmt.Sprintf("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body))
}()

// Serve serves s on ln with net/http until ctx ends, then shuts down
// gracefully. The source allow-list is applied as connections are
// accepted: a disallowed source gets a fixed 403 and its connection is
// closed, its request never parsed. At most maxConns connections are open
// (0: DefaultMaxConns).
func (s *Server) Serve(ctx context.Context, ln net.Listener, maxConns int) error {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	g := &gate{Listener: ln, s: s, slots: make(chan struct{}, maxConns), refusals: make(chan struct{}, refusing),
		logEvery: rate.NewLimiter(rate.Every(time.Second), 1)}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return graceful.Serve(ctx, srv, g)
}

// gate is the listener: it caps open connections and refuses disallowed
// sources before net/http sees them.
type gate struct {
	net.Listener
	s        *Server
	slots    chan struct{}
	refusals chan struct{}
	logEvery *rate.Limiter
	quiet    atomic.Int64 // denials not logged since the last line
}

func (g *gate) Accept() (net.Conn, error) {
	for {
		g.slots <- struct{}{}
		c, err := g.Listener.Accept()
		if err != nil {
			<-g.slots
			return nil, err
		}
		// A source not yet allowed may be on a Docker network created
		// since the last look: look again (at most once a second).
		if g.s.allowedAddr(c.RemoteAddr()) || (g.s.refreshAllow() && g.s.allowedAddr(c.RemoteAddr())) {
			return &slotConn{Conn: c, release: func() { <-g.slots }}, nil
		}
		<-g.slots
		g.deny(c)
	}
}

// deny answers a disallowed connection with the fixed 403 and closes it,
// discarding unread whatever it sent; it logs at most a line a second.
func (g *gate) deny(c net.Conn) {
	g.s.metrics.denied.Inc()
	if g.logEvery.Allow() {
		g.s.log.Warn("connection from a source that is not allowed: answered 403", "remote", c.RemoteAddr().String(), "also_denied_since_last_line", g.quiet.Swap(0))
	} else {
		g.quiet.Add(1)
	}
	select {
	case g.refusals <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-g.refusals }()
		defer c.Close()
		// Wait (briefly) until the client has sent something, without
		// reading it: a reply that comes before the request is written
		// makes some clients (Go's among them) drop the connection
		// instead of reading the 403.
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if sc, ok := c.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				first := true
				rc.Read(func(uintptr) bool {
					ready := !first // called again once the socket is readable
					first = false
					return ready
				})
			}
		}
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(forbidden); err != nil {
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		// Wait for the client to close, so that its unread request does
		// not turn our close into a reset that loses the 403.
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

type slotConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func (s *Server) allowedAddr(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(t.IP)
		return ok && s.allowedIP(ip.Unmap())
	}
	return false
}

func (s *Server) allowedIP(a netip.Addr) bool {
	for _, p := range *s.allow.Load() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// refreshAllow re-reads the allowed networks (Config.Refresh), at most once
// a second, and reports whether it did.
func (s *Server) refreshAllow() bool {
	if s.refresh == nil {
		return false
	}
	now := time.Now().UnixNano()
	last := s.refreshed.Load()
	if now-last < int64(time.Second) || !s.refreshed.CompareAndSwap(last, now) {
		return false
	}
	allow := s.refresh()
	s.allow.Store(&allow)
	return true
}

// privateRanges are where a signing server may listen and what its
// allow-list may admit without --allow-public.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
}

// Private reports whether every address of p is loopback, private or
// link-local.
func Private(p netip.Prefix) bool {
	p = p.Masked()
	for _, r := range privateRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// CheckExposure refuses a listen address that is a wildcard or not
// private, and an allow-list entry that admits non-private sources.
func CheckExposure(listen string, allow []netip.Prefix) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return fmt.Errorf("--listen %s: give an IP address, not a name", listen)
	case a.IsUnspecified():
		return fmt.Errorf("--listen %s listens on every interface, the public ones included: listen on the Docker bridge address (the default), or pass --allow-public", listen)
	case !Private(netip.PrefixFrom(a, a.BitLen())):
		return fmt.Errorf("--listen %s is not a private address: pass --allow-public to serve signatures there", listen)
	}
	for _, p := range allow {
		if !Private(p) {
			return fmt.Errorf("--allow %s admits sources beyond private networks: pass --allow-public to allow that", p)
		}
	}
	return nil
}
