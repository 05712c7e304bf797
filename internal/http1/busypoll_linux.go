package http1

import (
	"context"
	"fmt"
	"runtime"
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
// listener and every connection, with a zero timeout. It never reads a
// socket: once one is readable it parks, the scheduler then finds the
// connections' goroutines ready through Go's own poller, and the next
// response wakes the poller again.
//
// How long a round polls adapts to the traffic, as the kernel's halt
// polling does (see adaptWindow): a round that ran out before a request
// came is followed by a measure of the idle gap, from the end of that
// round to the next request read. Gaps up to limit double the window,
// from limit/4 up to limit; a longer gap halves it, down to zero. Under
// traffic with gaps longer than limit the poller thus polls once per
// response and parks: it costs no CPU while requests are sparse, and
// none at all while none come.
type busyPoller struct {
	epfd   int
	limit  time.Duration
	parked atomic.Bool
	wake   chan struct{}

	// A round that ran out stores when (idleFrom) and sets gapOpen; the
	// next request read closes the gap into gap and sets gapDone.
	idleFrom atomic.Int64 // UnixNano
	gapOpen  atomic.Bool
	gap      atomic.Int64 // nanoseconds
	gapDone  atomic.Bool

	rounds atomic.Int64 // polls made, for tests
	window atomic.Int64 // the current window, for tests
}

// busyPollSupported says whether Server.BusyPoll has an effect here.
const busyPollSupported = true

func newBusyPoller(limit time.Duration) (*busyPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("busy poll: epoll_create1: %w", err)
	}
	return &busyPoller{epfd: fd, limit: limit, wake: make(chan struct{}, 1)}, nil
}

// watch adds a listener's or connection's socket to the poll set. Closing
// the socket removes it.
func (bp *busyPoller) watch(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("busy poll: %w", err)
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP}
		cerr = unix.EpollCtl(bp.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil && cerr != nil {
		err = fmt.Errorf("busy poll: epoll_ctl: %w", cerr)
	}
	return err
}

// arrived notes that a request has been read. It costs an atomic load
// unless the last round ran out, when it measures the idle gap.
func (bp *busyPoller) arrived() {
	if bp.gapOpen.Load() && bp.gapOpen.CompareAndSwap(true, false) {
		bp.gap.Store(time.Now().UnixNano() - bp.idleFrom.Load())
		bp.gapDone.Store(true)
	}
}

// poke starts a polling round if the poller is parked. It costs an atomic
// load when the poller is already polling.
func (bp *busyPoller) poke() {
	if bp.parked.Load() && bp.parked.CompareAndSwap(true, false) {
		bp.wake <- struct{}{}
	}
}

// close releases the poll set.
func (bp *busyPoller) close() { unix.Close(bp.epfd) }

// run polls until ctx ends, then closes the poll set.
func (bp *busyPoller) run(ctx context.Context) {
	defer bp.close()
	var evs [1]unix.EpollEvent
	var window time.Duration
	for {
		bp.parked.Store(true)
		select {
		case <-bp.wake:
		case <-ctx.Done():
			return
		}
		if bp.gapDone.Load() && bp.gapDone.CompareAndSwap(true, false) {
			window = adaptWindow(window, time.Duration(bp.gap.Load()), bp.limit)
			bp.window.Store(int64(window))
		}
		// Let the goroutines that are already runnable go first: polling
		// is for when they are done.
		runtime.Gosched()
		until := time.Now().Add(window)
		for {
			bp.rounds.Add(1)
			n, err := unix.EpollWait(bp.epfd, evs[:], 0)
			if n > 0 || (err != nil && err != unix.EINTR) {
				break
			}
			if now := time.Now(); !now.Before(until) {
				bp.idleFrom.Store(now.UnixNano())
				bp.gapOpen.Store(true)
				break
			}
			runtime.Gosched() // timers and woken goroutines run here
		}
	}
}

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
