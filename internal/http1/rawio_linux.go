package http1

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockIO reads and writes a connection's socket with raw system calls:
// calls that do not tell the Go scheduler that the goroutine has entered
// the kernel.
//
// Go's own reads and writes (net.Conn) do tell it, so that the runtime's
// monitor thread, sysmon, can hand the processor (P) to another thread
// when a call takes long. With one P, a call that sysmon happens to see
// twice (at least 20 µs) is enough: it wakes a second thread to take the
// P, the first one finds the P gone when its call returns and sleeps,
// and sysmon then checks every 20 µs for the next millisecond or more.
// On a server pinned to one core, all of these threads share that core,
// so each hand-over costs context switches and sysmon's wake-ups, and
// buys little: the second thread can only run when the first one does
// not. Measured (ed25519, 10,000 requests/s open loop, one P pinned to
// one core, not polling, 4 s, two runs): sysmon ran 45,777–50,626 times,
// about 10 % of the core, and the server spent 66.6–69.0 µs of CPU a
// request; with raw calls, sysmon ran 20–33 times and a request cost
// 48.3–52.1 µs (docs/reliability.md).
//
// The socket is non-blocking (Go opens it so), so a raw call never
// waits: when there is nothing to read or no room to write, it returns
// EAGAIN, and RawConn waits for the socket in Go's poller, honouring
// deadlines and Close as net.Conn does. A call is bounded by the buffer
// it is given: a read by the reader's buffer, a write by a response.
type sockIO struct {
	nc net.Conn
	rc syscall.RawConn // nil when nc has no socket: then nc's own Read and Write

	buf     []byte // what the call in progress reads into or writes
	n       int
	err     error
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

func (s *sockIO) init(nc net.Conn) {
	s.nc = nc
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	s.rc = rc
	// Bound once, so that a read or write allocates nothing.
	s.readFn = s.rawRead
	s.writeFn = s.rawWrite
}

// rawConn returns the socket's RawConn, nil if nc has none.
func (s *sockIO) rawConn() syscall.RawConn { return s.rc }

// read reads into p, as io.Reader.
func (s *sockIO) read(p []byte) (int, error) {
	if s.rc == nil || len(p) == 0 {
		return s.nc.Read(p)
	}
	s.buf, s.n, s.err = p, 0, nil
	err := s.rc.Read(s.readFn)
	s.buf = nil
	if err != nil {
		return s.n, err
	}
	return s.n, s.err
}

// write writes all of p, or fails.
func (s *sockIO) write(p []byte) error {
	if s.rc == nil {
		_, err := s.nc.Write(p)
		return err
	}
	s.buf, s.err = p, nil
	err := s.rc.Write(s.writeFn)
	s.buf = nil
	if err != nil {
		return err
	}
	return s.err
}

func (s *sockIO) rawRead(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.buf))), uintptr(len(s.buf)))
		switch e {
		case 0:
			s.n = int(n)
			if n == 0 {
				s.err = io.EOF
			}
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until readable
		default:
			s.err = os.NewSyscallError("read", e)
			return true
		}
	}
}

func (s *sockIO) rawWrite(fd uintptr) bool {
	for len(s.buf) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.buf))), uintptr(len(s.buf)))
		switch e {
		case 0:
			if n == 0 { // not for a socket; never loop on it
				s.err = io.ErrShortWrite
				return true
			}
			s.buf = s.buf[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until writable, then go on
		default:
			s.err = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}
