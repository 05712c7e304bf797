// Package http1 is the signing server's HTTP/1.1 transport: a small,
// strict server for an http.Handler, built for a hot path of small
// request/response pairs on keep-alive connections.
//
// It does less per request than net/http: no goroutine or background read
// per request, no per-request context, timer or deadline (timeouts are
// enforced by a reaper that checks every connection once per Tick), and
// each response leaves in one write. It also accepts less: origin-form
// targets only, CRLF line endings only, no obsolete line folding, HTTP/1.0
// and HTTP/1.1 only, bodies framed by Content-Length or chunked (never
// both), no protocol upgrades. Anything else is answered with a 4xx or 5xx
// status and the connection is closed.
//
// Handlers must not keep the *http.Request, its Header or the
// ResponseWriter after they return: all three are reused for the
// connection's next request. The request's Context is not cancelled when
// the client goes away, and the ResponseWriter buffers the whole response
// until the handler returns. Both suit handlers that answer in
// microseconds; serve streaming or long-running handlers with net/http.
package http1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultRequestTimeout    = 15 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultTick              = time.Second
	DefaultShutdownTimeout   = 10 * time.Second
)

// maxDiscard is how much of a request body the handler did not read is
// read and dropped to keep the connection; past it the connection closes.
const maxDiscard = 256 << 10

// Server serves an http.Handler over HTTP/1.1. Its fields must not change
// while Serve runs.
type Server struct {
	// Handler answers every well-formed request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's line and header
	// fields, from the request's first byte.
	ReadHeaderTimeout time.Duration
	// RequestTimeout bounds a whole request, from its first byte to the
	// last byte of its response: slow bodies and clients that do not read
	// their response lose the connection.
	RequestTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a connection.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header fields together;
	// larger requests get 431.
	MaxHeaderBytes int
	// Tick is how often the timeouts are checked: each fires up to one
	// Tick late.
	Tick time.Duration
	// ShutdownTimeout bounds how long Serve waits, once its context ends,
	// for requests in flight before closing their connections.
	ShutdownTimeout time.Duration
	// Logger receives transport errors at debug level and handler panics
	// at error level; nil discards them.
	Logger *slog.Logger
	// BusyPoll, when positive, keeps one goroutine polling the sockets
	// for up to this long after each response instead of letting the
	// process sleep until the next request (Linux only; elsewhere Serve
	// logs a warning and goes on without). How long it polls adapts to
	// the traffic: it polls on only while requests come less than
	// BusyPoll apart, so sparse traffic costs two clock reads per request
	// and none costs nothing. On a VM, where waking a
	// sleeping vCPU is dear, that saves each request of a close-packed
	// stream a wake-up: lower latency and more requests per second under
	// an open load. Zero, the default, never polls.
	BusyPoll time.Duration

	pollerStarted func(*busyPoller) // for tests
}

// state is one Serve call's shared state.
type state struct {
	srv                            *Server
	log                            *slog.Logger
	headerTicks, reqTicks, idTicks int64
	now                            atomic.Int64 // coarse clock, in ticks since Serve began (from 1)
	closing                        atomic.Bool
	mu                             sync.Mutex
	conns                          map[*conn]struct{}
	wg                             sync.WaitGroup
	poller                         *busyPoller // nil unless BusyPoll
}

// Serve accepts connections on ln and serves them until ctx ends; then it
// stops accepting, closes idle connections, waits up to ShutdownTimeout
// for requests in flight and closes what is left. It returns nil after a
// shutdown, or the error that stopped it accepting.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("http1: Server.Handler is nil")
	}
	st := &state{srv: s, log: s.Logger, conns: map[*conn]struct{}{}}
	if st.log == nil {
		st.log = slog.New(slog.DiscardHandler)
	}
	tick := orDefault(s.Tick, DefaultTick)
	st.headerTicks = ticks(orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout), tick)
	st.reqTicks = ticks(orDefault(s.RequestTimeout, DefaultRequestTimeout), tick)
	st.idTicks = ticks(orDefault(s.IdleTimeout, DefaultIdleTimeout), tick)
	st.now.Store(1)

	rctx, stopReaper := context.WithCancel(context.Background())
	defer stopReaper()
	go st.reap(rctx, tick)
	if s.BusyPoll > 0 {
		st.startPoller(rctx, ln, s.BusyPoll)
	}

	errc := make(chan error, 1)
	go func() { errc <- st.accept(ln) }()
	var err error
	select {
	case err = <-errc:
		// Accept failed for good: still shut the connections down.
	case <-ctx.Done():
	}
	st.closing.Store(true)
	ln.Close()
	if err == nil {
		<-errc
	}
	st.shutdown(orDefault(s.ShutdownTimeout, DefaultShutdownTimeout))
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ticks converts a timeout into whole ticks, rounding up.
func ticks(d, tick time.Duration) int64 {
	return int64((d + tick - 1) / tick)
}

func (st *state) accept(ln net.Listener) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if st.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait, as net/http does.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			st.log.Warn("accept failed; retrying", "err", err.Error(), "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		c := newConn(st, nc)
		st.mu.Lock()
		if st.closing.Load() {
			st.mu.Unlock()
			nc.Close()
			continue
		}
		st.conns[c] = struct{}{}
		st.wg.Add(1)
		st.mu.Unlock()
		if st.poller != nil {
			if rc := c.sock.rawConn(); rc != nil {
				if err := st.poller.watch(rc); err != nil {
					st.log.Debug("connection left out of busy polling", "remote", c.remote, "err", err.Error())
				}
			}
		}
		go c.serve()
	}
}

// startPoller starts busy polling, or logs why it cannot.
func (st *state) startPoller(ctx context.Context, ln net.Listener, window time.Duration) {
	bp, err := newBusyPoller(window)
	if err == nil {
		if err = watchListener(bp, ln); err != nil {
			bp.close()
		}
	}
	if err != nil {
		st.log.Warn("serving without busy polling", "err", err.Error())
		return
	}
	st.poller = bp
	if st.srv.pollerStarted != nil {
		st.srv.pollerStarted(bp)
	}
	go bp.run(ctx)
}

// watchListener adds the listener's socket to the poller's set.
func watchListener(bp *busyPoller, ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("busy poll: a %T has no socket to poll", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("busy poll: %w", err)
	}
	return bp.watch(rc)
}

// reap closes connections past a timeout, once per tick.
func (st *state) reap(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var overdue []*conn
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := st.now.Add(1)
		overdue = overdue[:0]
		st.mu.Lock()
		for c := range st.conns {
			if c.overdue(now) {
				overdue = append(overdue, c)
			}
		}
		st.mu.Unlock()
		for _, c := range overdue {
			st.log.Debug("closing a connection past its timeout", "remote", c.remote)
			c.nc.Close()
		}
	}
}

// shutdown closes idle connections at once and busy ones once their
// request is answered, or when timeout passes.
func (st *state) shutdown(timeout time.Duration) {
	done := make(chan struct{})
	go func() { st.wg.Wait(); close(done) }()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		st.mu.Lock()
		for c := range st.conns {
			if c.reqSince.Load() == 0 {
				c.nc.Close()
			}
		}
		st.mu.Unlock()
		select {
		case <-done:
			return
		case <-poll.C:
		case <-deadline.C:
			st.mu.Lock()
			for c := range st.conns {
				c.nc.Close()
			}
			st.mu.Unlock()
			<-done
			return
		}
	}
}

func (st *state) forget(c *conn) {
	st.mu.Lock()
	delete(st.conns, c)
	st.mu.Unlock()
	st.wg.Done()
}

// Status is an error answered with an HTTP status before the handler runs.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

func badRequest(msg string) error { return &statusError{http.StatusBadRequest, msg} }
