//go:build !linux

package http1

import (
	"net"
	"syscall"
)

// sockIO reads and writes a connection with net.Conn's own calls; on
// Linux it makes raw system calls instead (see rawio_linux.go).
type sockIO struct{ nc net.Conn }

func (s *sockIO) init(nc net.Conn) { s.nc = nc }

// rawConn returns nil: only Linux uses the socket directly.
func (s *sockIO) rawConn() syscall.RawConn { return nil }

// read reads into p, as io.Reader.
func (s *sockIO) read(p []byte) (int, error) { return s.nc.Read(p) }

// write writes all of p, or fails.
func (s *sockIO) write(p []byte) error {
	_, err := s.nc.Write(p)
	return err
}
