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
// an open load those wake-ups cost a fifth of the time spent signing. The
// poller avoids them by polling its own epoll set, which holds the
// listener and every connection, with a zero timeout. It never reads a
// socket: once one is readable it parks, the scheduler then finds the
// connections' goroutines ready through Go's own poller, and the next
// response wakes the poller again. With nothing readable for window it
// parks until the next response.
type busyPoller struct {
	epfd   int
	window time.Duration
	parked atomic.Bool
	wake   chan struct{}
	rounds atomic.Int64 // polls made, for tests
}

// busyPollSupported says whether Server.BusyPoll has an effect here.
const busyPollSupported = true

func newBusyPoller(window time.Duration) (*busyPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("busy poll: epoll_create1: %w", err)
	}
	return &busyPoller{epfd: fd, window: window, wake: make(chan struct{}, 1)}, nil
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
		until := time.Now().Add(bp.window)
		for {
			bp.rounds.Add(1)
			n, err := unix.EpollWait(bp.epfd, evs[:], 0)
			if n > 0 || (err != nil && err != unix.EINTR) || time.Now().After(until) {
				break
			}
			runtime.Gosched() // timers and woken goroutines run here
		}
	}
}
