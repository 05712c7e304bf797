package httpguard_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/httpguard"
)

func TestReapsSlowRequestsOnly(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	})}
	g := httpguard.New(time.Second, 100*time.Millisecond)
	g.Install(srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(g.Listener(ln))
	defer srv.Close()

	// A request whose body never completes is cut after the limit.
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"))
	// A keep-alive connection that finished its request and sits idle is
	// left alone (idle connections are net/http's IdleTimeout's business).
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	buf := make([]byte, 512)
	if n, err := idle.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "200 OK") {
		t.Fatalf("idle connection's request: %v %q", err, buf[:n])
	}

	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("slow connection not closed: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slow connection closed after %v, limit 1 s", d)
	}
	// The idle connection still works.
	idle.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := idle.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "200 OK") {
		t.Fatalf("the guard closed an idle keep-alive connection: %v", err)
	}
	if g.Conns() != 1 {
		t.Fatalf("guard tracks %d connections, want 1", g.Conns())
	}
}
