//go:build linux

package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// eventLoopSupported says whether eventLoop exists.
const eventLoopSupported = true

// eventLoop drives the load from one busy-polling event loop over
// non-blocking sockets, closed loop or open loop.
//
// Busy polling keeps the generator's own delays and costs out of what it
// measures. A Go timer can fire up to a millisecond late once the process
// goes idle, and a goroutine parked on a socket waits for the scheduler:
// either would add to the latencies reported. And a generator asleep in
// epoll_wait makes the server wake it on every response: on a VM that is
// an inter-processor interrupt, paid inside the server's write(2) on the
// server's core (12 % of it at the /sign peak, by perf). Here nothing
// sleeps, so requests leave within microseconds of their time, responses
// are timed as they arrive, and the server's core does only the server's
// work, at the price of keeping the generator's core busy for the run.
//
// In the closed loop each connection sends its next request as soon as it
// has the answer to the last; the run stops at its end, and requests then
// in flight are dropped, neither counted nor errors. In the open loop each
// latency counts from the request's scheduled start, so a request that
// waits for a free connection is charged for the wait; requests scheduled
// in the run are waited for up to drain after it ends, and those still
// unanswered then count as errors. The loop also tallies responses per
// 100 ms window and, in the open loop, the time it was behind schedule
// (requests due, every connection busy).
func eventLoop(ctx context.Context, c Config, reqs [][]byte) (lat []time.Duration, errs int64, tl tally, measureFrom time.Time, err error) {
	addr, err := net.ResolveTCPAddr("tcp", c.Addr)
	if err != nil {
		return nil, 0, tl, measureFrom, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, 0, tl, measureFrom, fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(ep)
	conns := make([]*rawConn, c.Conns)
	idle := make([]int, 0, c.Conns)
	for i := range conns {
		fd, err := dialRaw(addr)
		if err != nil {
			return nil, 0, tl, measureFrom, err
		}
		defer unix.Close(fd)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, 0, tl, measureFrom, fmt.Errorf("epoll_ctl: %w", err)
		}
		conns[i] = &rawConn{fd: fd, buf: make([]byte, 0, 4096)}
		idle = append(idle, i)
	}

	// The clock starts once every connection is up: a server whose
	// listen backlog is full makes a connect wait for the SYN to be sent
	// again, a second or more.
	start := time.Now()
	measureFrom = start.Add(c.Warmup)
	closed := c.Rate <= 0
	var interval time.Duration
	if !closed {
		interval = time.Duration(float64(time.Second) / c.Rate)
	}
	end := start.Add(c.Warmup + c.Duration)
	drain := min(c.Duration, 5*time.Second)
	next := start
	var (
		queue    []time.Time // scheduled starts waiting for a connection
		qhead    int
		issued   int64
		sent     int // requests handed to a connection
		inflight int
		live     = len(conns)
		evs      = make([]unix.EpollEvent, len(conns))
		rbuf     = make([]byte, 64<<10)
	)
	tl.windows = make([]int64, c.Duration/slowWindow)
	lat = make([]time.Duration, 0, int(max(c.Rate, 20000)*c.Duration.Seconds())+16)
	for polls := 0; ; polls++ {
		now := time.Now()
		if closed {
			if !now.Before(end) {
				return lat, errs, tl, measureFrom, nil
			}
			for _, i := range idle { // every idle connection sends now
				if !conns[i].dead && issued < c.MaxRequests {
					queue = append(queue, now)
					issued++
				}
			}
		}
		for !closed && next.Before(end) && !next.After(now) && issued < c.MaxRequests {
			queue = append(queue, next)
			issued++
			next = next.Add(interval)
		}
		for qhead < len(queue) && len(idle) > 0 {
			i := idle[len(idle)-1]
			idle = idle[:len(idle)-1]
			if conns[i].dead {
				continue
			}
			conns[i].sched, conns[i].out, conns[i].busy = queue[qhead], reqs[sent%len(reqs)], true
			qhead++
			sent++
			inflight++
		}
		if !closed {
			tl.update(now, qhead < len(queue) && !now.Before(measureFrom) && now.Before(end))
		}
		if qhead == len(queue) && len(queue) > 1024 {
			queue, qhead = queue[:0], 0
		}
		for _, rc := range conns {
			if len(rc.out) > 0 && !rc.dead {
				if err := rc.flush(); err != nil {
					inflight, errs = rc.fail(ep, inflight, errs)
					live--
				}
			}
		}
		scheduling := (closed || next.Before(end)) && issued < c.MaxRequests
		if !scheduling && qhead == len(queue) && inflight == 0 {
			return lat, errs, tl, measureFrom, nil
		}
		if live == 0 {
			return lat, errs, tl, measureFrom, errors.New("every connection failed")
		}
		if !scheduling && now.After(end.Add(drain)) {
			return lat, errs + int64(inflight+len(queue)-qhead), tl, measureFrom, nil
		}
		if polls%1024 == 0 && ctx.Err() != nil {
			return lat, errs, tl, measureFrom, ctx.Err()
		}

		n, err := unix.EpollWait(ep, evs, 0)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return lat, errs, tl, measureFrom, fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range evs[:n] {
			i := int(ev.Fd)
			rc := conns[i]
			if rc.dead {
				continue
			}
			status, done, err := rc.receive(rbuf)
			if err != nil {
				inflight, errs = rc.fail(ep, inflight, errs)
				live--
				continue
			}
			if !done {
				continue
			}
			t := time.Now()
			tl.answered(t, measureFrom)
			rc.busy = false
			inflight--
			idle = append(idle, i)
			if rc.sched.Before(measureFrom) {
				continue
			}
			if status != 200 {
				errs++
			}
			lat = append(lat, t.Sub(rc.sched))
		}
	}
}

// rawConn is one non-blocking connection with at most one request
// outstanding.
type rawConn struct {
	fd    int
	sched time.Time // the outstanding request's scheduled start
	out   []byte    // request bytes not yet written
	buf   []byte    // response bytes received so far
	busy  bool      // a request is outstanding
	dead  bool
}

// fail retires the connection; its outstanding request, if any, counts
// as an error.
func (rc *rawConn) fail(ep, inflight int, errs int64) (int, int64) {
	rc.dead, rc.out = true, nil
	unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, rc.fd, nil)
	if rc.busy {
		rc.busy = false
		return inflight - 1, errs + 1
	}
	return inflight, errs
}

func (rc *rawConn) flush() error {
	n, err := unix.Write(rc.fd, rc.out)
	if err == unix.EAGAIN {
		return nil // the socket buffer is full: retry on the next pass
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	rc.out = rc.out[n:]
	return nil
}

// receive reads what the socket holds and reports whether it completes
// the outstanding response.
func (rc *rawConn) receive(rbuf []byte) (status int, done bool, err error) {
	for {
		n, err := unix.Read(rc.fd, rbuf)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			return 0, false, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return 0, false, errors.New("connection closed by the server")
		}
		rc.buf = append(rc.buf, rbuf[:n]...)
		if n < len(rbuf) {
			break
		}
	}
	status, size, err := parseResponse(rc.buf)
	if err != nil || size == 0 {
		return 0, false, err
	}
	if size != len(rc.buf) {
		return 0, false, fmt.Errorf("%d bytes past the response: only one request was outstanding", len(rc.buf)-size)
	}
	rc.buf = rc.buf[:0]
	return status, true, nil
}

// dialRaw connects a TCP socket to addr and makes it non-blocking, with
// Nagle's algorithm off.
func dialRaw(addr *net.TCPAddr) (int, error) {
	var (
		family = unix.AF_INET
		sa     unix.Sockaddr
	)
	if ip4 := addr.IP.To4(); ip4 != nil {
		sa4 := &unix.SockaddrInet4{Port: addr.Port}
		copy(sa4.Addr[:], ip4)
		sa = sa4
	} else {
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{Port: addr.Port}
		copy(sa6.Addr[:], addr.IP.To16())
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %v: %w", addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TCP_NODELAY: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("non-blocking: %w", err)
	}
	return fd, nil
}
