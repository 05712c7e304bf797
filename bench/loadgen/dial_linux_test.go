package loadgen_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/teesign/teesign/bench/loadgen"
)

// TestClockStartsWhenConnected: a server whose listen backlog is full
// makes connects wait a second for the SYN to be sent again (Python's
// http.server listens with a backlog of 5). The run's clock must start
// once the connections are up, or the wait eats into the measured time.
func TestClockStartsWhenConnected(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // one connection queued, then SYNs are dropped
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
	go func() {
		time.Sleep(300 * time.Millisecond) // accept nothing at first
		srv.Serve(ln)
	}()
	defer srv.Close()
	defer ln.Close()

	t0 := time.Now()
	res, err := loadgen.Run(context.Background(), loadgen.Config{Addr: ln.Addr().String(), Path: "/", Conns: 4, Duration: 300 * time.Millisecond})
	took := time.Since(t0)
	if took < 900*time.Millisecond {
		t.Skipf("the connects did not wait (%v): this kernel did not drop SYNs on a full backlog", took)
	}
	if err != nil || res.Errors > 0 {
		t.Fatalf("run of %v with connects that waited: %v, %v", took, res, err)
	}
	if res.Duration != 300*time.Millisecond {
		t.Fatalf("measured %v, want the configured 300ms", res.Duration)
	}
	t.Logf("connects waited; run took %v: %v", took, res)
}
