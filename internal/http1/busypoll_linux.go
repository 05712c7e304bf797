package http1

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// busyPoller keeps a goroutine polling the server's sockets for a while
// after each response, so that the process does not go to sleep between
// requests that follow each other closely.
//
// A Go server whose goroutines are all waiting for the network blocks its
// thread in epoll_wait; each request that arrives then pays for waking it:
// a context switch and, on a VM whose idle vCPU halts, the halt's exit. In
// an open load those wake-ups cost as much server CPU as signing. The
// poller avoids them by polling its own epoll set, which holds the
// listener and every connection (edge-triggered), with a zero timeout.
//
// While it polls it also stands in for Go's poller. A connection that
// goes idle with nothing left to read does not read again (a read that
// would find nothing, then a wait in Go's poller, then that poller's own
// epoll_wait: 1 to 1.6 µs each on such a VM) but waits in awaitReadable
// until the poller says its socket is readable. Connections that wait in
// Go's poller instead (those that went idle while the poller was parked)
// and the listener are left to Go: the poller steps aside for a moment so
// that the scheduler polls the network. When a round ends the poller
// releases every connection waiting for it to read, and so to Go's poller.
//
// How long a round polls adapts to the traffic, as the kernel's halt
// polling does (see adaptWindow). The idle gap before a request is
// measured from when the server may have gone idle (the end of a round
// that ran out, or, while the window is shut, the last response) to when
// the request is read. Gaps up to limit double the window, from limit/4
// up to limit; a longer gap halves it, down to zero. While the window is
// shut a response does not wake the poller at all: sparse traffic costs
// two clock reads per request, and none costs nothing.
type busyPoller struct {
	epfd   int
	limit  time.Duration
	epoch  time.Time // monotonic origin of idleFrom
	parked atomic.Bool
	wake   chan struct{}

	window   atomic.Int64 // the current window, in nanoseconds
	idleFrom atomic.Int64 // since epoch, in nanoseconds
	gapOpen  atomic.Bool  // idleFrom is set and no request read since

	// dispatching says the poller is polling, or has been woken to, and
	// hands readiness to connections waiting in awaitReadable.
	dispatching atomic.Bool
	mu          sync.Mutex
	conns       map[uint64]*conn // by epoll data; 0 is the listener
	lastID      uint64

	// accepts counts the listener's accepts. pending (the poller's own)
	// lists the sockets, by what they had read or accepted when their
	// readiness was seen, whose readiness must reach Go's poller before
	// the poller polls on.
	accepts atomic.Uint64
	pending []pendingRead

	rounds     atomic.Int64 // polls made, for tests
	dispatched atomic.Int64 // readiness handed to a waiting connection, for tests
}

// pendingRead is a socket readable in Go's poller: a connection, or the
// listener if c is nil, and its count of reads or accepts at the time.
type pendingRead struct {
	c     *conn
	count uint64
}

// busyPollSupported says whether Server.BusyPoll has an effect here.
const busyPollSupported = true

func newBusyPoller(limit time.Duration) (*busyPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("busy poll: epoll_create1: %w", err)
	}
	return &busyPoller{epfd: fd, limit: limit, epoch: time.Now(), wake: make(chan struct{}, 1), conns: map[uint64]*conn{}}, nil
}

// watchListener adds the listener's socket to the poll set.
func (bp *busyPoller) watchListener(ln syscall.Conn) error { return bp.add(ln, 0) }

// accepted counts an accept on the listener.
func (bp *busyPoller) accepted() { bp.accepts.Add(1) }

// watchConn adds a connection's socket to the poll set, after which
// readiness can be handed to it in awaitReadable. forgetConn undoes it.
func (bp *busyPoller) watchConn(c *conn) error {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("busy poll: a %T has no socket to poll", c.nc)
	}
	bp.mu.Lock()
	bp.lastID++
	id := bp.lastID
	bp.mu.Unlock()
	if err := bp.add(sc, id); err != nil {
		return err
	}
	c.pollID = id
	bp.mu.Lock()
	bp.conns[id] = c
	bp.mu.Unlock()
	return nil
}

// forgetConn drops a connection from the poller's table; closing its
// socket drops it from the poll set.
func (bp *busyPoller) forgetConn(c *conn) {
	if c.pollID != 0 {
		bp.mu.Lock()
		delete(bp.conns, c.pollID)
		bp.mu.Unlock()
	}
}

// add adds a socket to the poll set, edge-triggered: each arrival of
// data is reported once, whoever reads it.
func (bp *busyPoller) add(c syscall.Conn, id uint64) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("busy poll: %w", err)
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET}
		// The event's 64 data bits are Fd and Pad in x/sys.
		ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
		cerr = unix.EpollCtl(bp.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil && cerr != nil {
		err = fmt.Errorf("busy poll: epoll_ctl: %w", cerr)
	}
	return err
}

// arrived notes that a request has been read. It costs an atomic load
// unless the server may have been idle just before, when it measures the
// gap and adapts the window to it.
func (bp *busyPoller) arrived() {
	if bp.gapOpen.Load() && bp.gapOpen.CompareAndSwap(true, false) {
		gap := time.Duration(int64(time.Since(bp.epoch)) - bp.idleFrom.Load())
		for {
			w := bp.window.Load()
			if bp.window.CompareAndSwap(w, int64(adaptWindow(time.Duration(w), gap, bp.limit))) {
				return
			}
		}
	}
}

// poke follows each response. While the window is open it starts a
// polling round if the poller is parked (an atomic load when it is
// polling already); while it is shut it only notes the time, from which
// the next request's gap is measured.
func (bp *busyPoller) poke() {
	if bp.window.Load() == 0 {
		bp.idle()
		return
	}
	if bp.parked.Load() && bp.parked.CompareAndSwap(true, false) {
		bp.dispatching.Store(true)
		bp.wake <- struct{}{}
	}
}

// awaitReadable is called by a connection that is idle, has nothing
// buffered and read all its socket held. While the poller dispatches it
// waits for the poller to say the socket is readable (or to stop
// dispatching), saving the read that would find nothing and the wait in
// Go's poller; otherwise it returns at once.
func (bp *busyPoller) awaitReadable(c *conn) {
	if c.pollID == 0 {
		return
	}
	// Paired with end: either the poller sees waiting, or this sees
	// dispatching false.
	c.waiting.Store(true)
	if !bp.dispatching.Load() {
		c.waiting.Store(false)
		return
	}
	<-c.ready
	c.waiting.Store(false)
}

// dispatch hands the readiness in evs to the connections waiting for it.
// The other readable sockets (the listener's, or connections' that were
// not waiting here) wait in Go's poller: dispatch lists them in
// bp.pending, and reports whether there are any.
func (bp *busyPoller) dispatch(evs []unix.EpollEvent) (pending bool) {
	bp.pending = bp.pending[:0]
	bp.mu.Lock()
	for i := range evs {
		id := uint64(uint32(evs[i].Fd)) | uint64(uint32(evs[i].Pad))<<32
		c := bp.conns[id]
		switch {
		case id == 0:
			bp.pending = append(bp.pending, pendingRead{nil, bp.accepts.Load()})
		case c == nil: // gone
		case c.waiting.Load():
			bp.dispatched.Add(1)
			c.signal()
		default:
			bp.pending = append(bp.pending, pendingRead{c, c.reads.Load()})
		}
	}
	bp.mu.Unlock()
	return len(bp.pending) > 0
}

// pendingDone reports whether every socket in bp.pending has been read
// (or accepted on) since.
func (bp *busyPoller) pendingDone() bool {
	for _, p := range bp.pending {
		if p.c == nil && bp.accepts.Load() == p.count || p.c != nil && p.c.reads.Load() == p.count {
			return false
		}
	}
	return true
}

// stepAside parks the poller until the goroutines of the sockets in
// bp.pending have read, or for napLimit at most. Go's scheduler polls the
// network only when nothing else can run, and the poller, when it polls,
// always can: so it parks, and each response in the meantime (a poke)
// wakes it only to check. Those waiting in awaitReadable still wait: for
// up to napLimit, or until the readers pending respond. It reports false
// if ctx ended.
func (bp *busyPoller) stepAside(ctx context.Context, nap *time.Timer) bool {
	defer bp.parked.Store(false)
	nap.Reset(napLimit)
	defer nap.Stop()
	for !bp.pendingDone() {
		bp.parked.Store(true)
		select {
		case <-bp.wake:
		case <-nap.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// end stops dispatching and releases every connection waiting for it.
func (bp *busyPoller) end() {
	bp.dispatching.Store(false)
	bp.mu.Lock()
	for _, c := range bp.conns {
		if c.waiting.Load() {
			c.signal()
		}
	}
	bp.mu.Unlock()
}

// idle notes that the server may be idle from now on.
func (bp *busyPoller) idle() {
	bp.idleFrom.Store(int64(time.Since(bp.epoch)))
	bp.gapOpen.Store(true)
}

// close releases the poll set.
func (bp *busyPoller) close() { unix.Close(bp.epfd) }

// run polls until ctx ends, then closes the poll set.
func (bp *busyPoller) run(ctx context.Context) {
	defer bp.close()
	defer bp.end()
	var evs [64]unix.EpollEvent
	nap := time.NewTimer(time.Hour)
	nap.Stop()
	for {
		bp.parked.Store(true)
		select {
		case <-bp.wake:
		case <-ctx.Done():
			return
		}
		bp.dispatching.Store(true)
		// Let the goroutines that are already runnable go first: polling
		// is for when they are done.
		runtime.Gosched()
		until := time.Now().Add(time.Duration(bp.window.Load()))
		for {
			bp.rounds.Add(1)
			n, err := unix.EpollWait(bp.epfd, evs[:], 0)
			if err != nil && err != unix.EINTR {
				break
			}
			if n > 0 {
				if !bp.dispatch(evs[:n]) {
					runtime.Gosched() // the connections handed readiness run here
				} else if !bp.stepAside(ctx, nap) {
					return
				}
				until = time.Now().Add(time.Duration(bp.window.Load()))
				continue
			}
			if !time.Now().Before(until) {
				bp.idle()
				break
			}
			runtime.Gosched() // timers and woken goroutines run here
		}
		bp.end()
	}
}

// napLimit bounds how long the poller steps aside for Go's own poller.
// The scheduler's own wait in the network poller has a resolution of a
// millisecond.
const napLimit = time.Millisecond

// adaptWindow returns the next polling window after an idle gap of gap
// that followed a round of window: gaps up to limit double it (starting
// from limit/4), longer ones halve it, and under limit/4 it is zero.
func adaptWindow(window, gap, limit time.Duration) time.Duration {
	if gap <= limit {
		return min(max(2*window, limit/4), limit)
	}
	if window /= 2; window < limit/4 {
		return 0
	}
	return window
}
