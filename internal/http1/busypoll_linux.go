package http1

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

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
// polling does (see adaptWindow). The idle gap before a request is
// measured from when the server may have gone idle (the end of a round
// that ran out, or, while the window is shut, the last response) to when
// the request is read. Gaps up to limit double the window, from limit/4
// up to limit; a longer gap halves it, down to zero. While the window is
// shut a response does not wake the poller at all: sparse traffic costs
// two clock reads per request, and none costs nothing. While another
// process wants the core, polling stops (see contention).
type busyPoller struct {
	epfd   int
	limit  time.Duration
	epoch  time.Time // monotonic origin of idleFrom
	parked atomic.Bool
	wake   chan struct{}

	window   atomic.Int64 // the current window, in nanoseconds
	idleFrom atomic.Int64 // since epoch, in nanoseconds
	gapOpen  atomic.Bool  // idleFrom is set and no request read since

	// quietUntil, since epoch in nanoseconds, is when polling may resume
	// after contention was found; 0 for none.
	quietUntil atomic.Int64
	contention *contention // used by run only

	rounds   atomic.Int64 // polls made, for tests
	backoffs atomic.Int64 // times polling stopped for contention, for tests
}

// busyPollSupported says whether Server.BusyPoll has an effect here.
const busyPollSupported = true

func newBusyPoller(limit time.Duration) (*busyPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("busy poll: epoll_create1: %w", err)
	}
	return &busyPoller{
		epfd: fd, limit: limit, epoch: time.Now(), wake: make(chan struct{}, 1),
		contention: newContention(),
	}, nil
}

// watch adds a listener's or connection's socket to the poll set. Closing
// the socket removes it.
func (bp *busyPoller) watch(rc syscall.RawConn) error {
	var cerr error
	err := rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP}
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
// polling already); while it is shut, or polling has stopped for
// contention, it only notes the time, from which the next request's gap
// is measured.
func (bp *busyPoller) poke() {
	if bp.window.Load() == 0 || bp.quiet() {
		bp.idle()
		return
	}
	if bp.parked.Load() && bp.parked.CompareAndSwap(true, false) {
		bp.wake <- struct{}{}
	}
}

// quiet says whether polling has stopped for contention.
func (bp *busyPoller) quiet() bool {
	q := bp.quietUntil.Load()
	return q != 0 && int64(time.Since(bp.epoch)) < q
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
	var evs [1]unix.EpollEvent
	for {
		bp.parked.Store(true)
		select {
		case <-bp.wake:
		case <-ctx.Done():
			return
		}
		// Let the goroutines that are already runnable go first: polling
		// is for when they are done.
		runtime.Gosched()
		until := time.Now().Add(time.Duration(bp.window.Load()))
		for {
			bp.rounds.Add(1)
			if bp.readable(&evs) {
				break
			}
			now := time.Now()
			if d := bp.contention.check(now); d > 0 {
				bp.quietUntil.Store(int64(now.Add(d).Sub(bp.epoch)))
				bp.backoffs.Add(1)
				bp.idle()
				break
			}
			if !now.Before(until) {
				bp.idle()
				break
			}
			runtime.Gosched() // timers and woken goroutines run here
		}
	}
}

// readable polls the set once, with a raw epoll_pwait that does not wait
// (raw for the reason sockIO's calls are), and reports whether a socket
// is readable. An error other than EINTR ends the round as if one were:
// the set is then left to Go's poller.
func (bp *busyPoller) readable(evs *[1]unix.EpollEvent) bool {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(bp.epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	return (e == 0 && n > 0) || (e != 0 && e != unix.EINTR)
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
