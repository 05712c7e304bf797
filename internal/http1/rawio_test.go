package http1

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestSockIO checks the server's socket reads and writes against what
// net.Conn does: data both ways, a write larger than the socket buffers
// that waits for the peer to read, end of stream, deadlines, Close
// while waiting, a peer that has gone, and a connection without a
// socket.
func TestSockIO(t *testing.T) {
	t.Run("data", func(t *testing.T) {
		srv, cli := tcpPair(t)
		var s sockIO
		s.init(srv)
		if _, err := cli.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := s.read(buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("read = %q, %v", buf[:n], err)
		}
		if err := s.write([]byte("world")); err != nil {
			t.Fatal(err)
		}
		if n, err := io.ReadFull(cli, buf[:5]); err != nil || string(buf[:n]) != "world" {
			t.Fatalf("peer read %q, %v", buf[:n], err)
		}
		cli.Close()
		if n, err := s.read(buf); n != 0 || err != io.EOF {
			t.Fatalf("read after the peer closed = %d, %v; want 0, EOF", n, err)
		}
	})

	t.Run("write waits for room", func(t *testing.T) {
		srv, cli := tcpPair(t)
		var s sockIO
		s.init(srv)
		big := make([]byte, 16<<20)
		for i := range big {
			big[i] = byte(i * 7)
		}
		done := make(chan error, 1)
		go func() { done <- s.write(big) }()
		select {
		case err := <-done:
			t.Fatalf("a 16 MiB write returned (%v) before the peer read anything", err)
		case <-time.After(200 * time.Millisecond):
		}
		got := make(chan [32]byte, 1)
		go func() {
			h := sha256.New()
			io.CopyN(h, cli, int64(len(big)))
			var sum [32]byte
			copy(sum[:], h.Sum(nil))
			got <- sum
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if <-got != sha256.Sum256(big) {
			t.Fatal("the peer read other bytes than were written")
		}
	})

	t.Run("deadline", func(t *testing.T) {
		srv, _ := tcpPair(t)
		var s sockIO
		s.init(srv)
		srv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := s.read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %v, want a deadline error", err)
		}
	})

	t.Run("close while waiting", func(t *testing.T) {
		srv, _ := tcpPair(t)
		var s sockIO
		s.init(srv)
		done := make(chan error, 1)
		go func() {
			_, err := s.read(make([]byte, 8))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		srv.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end a waiting read")
		}
	})

	t.Run("peer gone", func(t *testing.T) {
		srv, cli := tcpPair(t)
		var s sockIO
		s.init(srv)
		cli.(*net.TCPConn).SetLinger(0) // close with a reset
		cli.Close()
		time.Sleep(50 * time.Millisecond)
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			err = s.write(bytes.Repeat([]byte("x"), 1<<16))
		}
		if err == nil {
			t.Fatal("writes to a reset connection did not fail")
		}
	})

	t.Run("no socket", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		var s sockIO
		s.init(a)
		go b.Write([]byte("pipe"))
		buf := make([]byte, 8)
		if n, err := s.read(buf); err != nil || string(buf[:n]) != "pipe" {
			t.Fatalf("read = %q, %v", buf[:n], err)
		}
		go io.ReadFull(b, buf[:4])
		if err := s.write([]byte("back")); err != nil {
			t.Fatal(err)
		}
	})
}
