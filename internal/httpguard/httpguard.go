// Package httpguard bounds how long an HTTP/1.1 request may take, from its
// first byte to the end of its response, without net/http's per-request
// ReadTimeout and WriteTimeout deadlines (each a timer update on every
// request of the signing server's hot path). A reaper wakes every Tick and
// closes connections whose current request is older than the limit: slow
// bodies and clients that do not read their response lose the connection.
// ReadHeaderTimeout and IdleTimeout stay with net/http.
package httpguard

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Guard tracks a server's connections.
type Guard struct {
	limit time.Duration
	tick  time.Duration
	now   atomic.Int64 // coarse clock, in ticks
	mu    sync.Mutex
	conns map[*conn]struct{}
}

type conn struct {
	net.Conn
	g *Guard
	// since is the tick the current request started at, 0 when idle.
	since atomic.Int64
	once  sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.conns, c)
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}

type connKey struct{}

// New returns a guard that closes connections whose request has lasted
// longer than limit, checking every tick.
func New(limit, tick time.Duration) *Guard {
	g := &Guard{limit: limit, tick: tick, conns: map[*conn]struct{}{}}
	g.now.Store(1)
	return g
}

// Listener wraps ln so that the guard sees every connection.
func (g *Guard) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, g: g} }

type listener struct {
	net.Listener
	g *Guard
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &conn{Conn: c, g: l.g}
	l.g.mu.Lock()
	l.g.conns[gc] = struct{}{}
	l.g.mu.Unlock()
	return gc, nil
}

// Install sets srv's ConnState hook (it must not have one).
func (g *Guard) Install(srv *http.Server) {
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		gc, ok := c.(*conn)
		if !ok {
			return
		}
		switch s {
		case http.StateActive:
			gc.since.Store(g.now.Load())
		case http.StateIdle:
			gc.since.Store(0)
		case http.StateClosed, http.StateHijacked:
			gc.once.Do(func() {
				g.mu.Lock()
				delete(g.conns, gc)
				g.mu.Unlock()
			})
		}
	}
}

// Run reaps overdue connections until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(g.tick)
	defer t.Stop()
	maxTicks := int64(g.limit / g.tick)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := g.now.Add(1)
		var overdue []*conn
		g.mu.Lock()
		for c := range g.conns {
			if s := c.since.Load(); s != 0 && now-s > maxTicks {
				overdue = append(overdue, c)
			}
		}
		g.mu.Unlock()
		for _, c := range overdue {
			c.Close()
		}
	}
}

// Serve serves srv on ln until ctx ends, closing connections whose
// request lasts longer than limit, then shuts down gracefully (waiting up
// to 10 s for requests in flight).
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, limit time.Duration) error {
	g := New(limit, time.Second)
	g.Install(srv)
	gctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(gctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(g.Listener(ln)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}

// Conns returns the number of open connections.
func (g *Guard) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}
