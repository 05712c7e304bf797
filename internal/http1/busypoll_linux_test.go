package http1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// startPolling starts the echo server on one P, as the signing server is
// benchmarked, busy polling up to limit, and returns it with its poller.
func startPolling(t *testing.T, limit time.Duration, tune func(*Server)) (*served, *busyPoller) {
	t.Helper()
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	started := make(chan *busyPoller, 1)
	sv := start(t, http.HandlerFunc(echo), func(s *Server) {
		s.BusyPoll = limit
		s.pollerStarted = func(p *busyPoller) { started <- p }
		if tune != nil {
			tune(s)
		}
	})
	select {
	case bp := <-started:
		return sv, bp
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not start busy polling")
		return nil, nil
	}
}

// dialTest connects to addr; the connection closes with the test.
func dialTest(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// TestBusyPoll runs the server with busy polling on one P, as the signing
// server is benchmarked: requests of every shape are answered, timeouts
// still fire while the poller is busy, the poller parks once requests
// stop and polls again when they come close together again.
func TestBusyPoll(t *testing.T) {
	const window = 2 * time.Millisecond
	sv, bp := startPolling(t, window, func(s *Server) {
		s.Tick = 20 * time.Millisecond
		s.ReadHeaderTimeout = 200 * time.Millisecond
	})
	dial := func() (net.Conn, *bufio.Reader) { return dialTest(t, sv.addr) }
	ask := func(c net.Conn, br *bufio.Reader, body string) error {
		if _, err := fmt.Fprintf(c, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasSuffix(string(b), "body="+body) {
			return fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		return nil
	}

	// Keep-alive, pipelined and new connections.
	c, br := dial()
	for i := range 100 {
		if err := ask(c, br, fmt.Sprint("keep-alive ", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	io.WriteString(c, strings.Repeat("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", 20))
	for i := range 20 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("pipelined %d: %v", i, err)
		}
		io.ReadAll(resp.Body)
	}
	for i := range 10 {
		c2, br2 := dial()
		if err := ask(c2, br2, "new connection"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if bp == nil || bp.rounds.Load() == 0 {
		t.Fatal("the server answered without busy polling")
	}

	// Timers and the reaper run while the poller is kept busy: a client
	// asks in a loop while another connection sends half a header.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var loopErr error
	go func() {
		defer wg.Done()
		c, br := dial()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := ask(c, br, "loop"); err != nil {
				loopErr = err
				return
			}
		}
	}()
	before := bp.rounds.Load()
	half, _ := dial()
	io.WriteString(half, "GET / HTTP/1.1\r\nHo")
	d, ok := closedWithin(half, 3*time.Second)
	close(stop)
	wg.Wait()
	if loopErr != nil {
		t.Fatalf("looping client: %v", loopErr)
	}
	if !ok || d < 150*time.Millisecond || d > 600*time.Millisecond {
		t.Errorf("partial header under load: closed %v after %v, want 200 ms + a tick", ok, d)
	}
	if bp.rounds.Load() == before {
		t.Error("the poller did not poll while requests kept coming")
	}

	// Once requests stop, the poller parks within its window.
	time.Sleep(20 * window)
	parked := bp.rounds.Load()
	time.Sleep(100 * time.Millisecond)
	if n := bp.rounds.Load(); n != parked {
		t.Errorf("the poller polled %d times with no requests coming", n-parked)
	}
	// And polls again once requests come close together again.
	for i := range 5 {
		if err := ask(c, br, fmt.Sprint("after a pause ", i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Millisecond)
	if bp.rounds.Load() == parked {
		t.Error("the poller did not poll again for requests after a pause")
	}
}

// TestBusyPollAdapts checks that the polling window follows the gaps
// between requests: it opens while requests come closer together than
// the limit, and closes to nothing once they come further apart, so that
// sparse traffic costs no polling.
func TestBusyPollAdapts(t *testing.T) {
	const limit = 40 * time.Millisecond
	sv, bp := startPolling(t, limit, nil)
	c, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	ask := func() {
		t.Helper()
		if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response: %v", err)
		}
		io.ReadAll(resp.Body)
	}
	for range 20 {
		ask()
		time.Sleep(2 * time.Millisecond)
	}
	if w := time.Duration(bp.window.Load()); w < limit/4 {
		t.Fatalf("requests 2 ms apart: window %v, want at least %v", w, limit/4)
	}
	for range 6 {
		ask()
		time.Sleep(3 * limit)
	}
	ask()
	if w := time.Duration(bp.window.Load()); w != 0 {
		t.Errorf("requests %v apart: window %v, want 0", 3*limit, w)
	}
}

func TestAdaptWindow(t *testing.T) {
	const limit = 200 * time.Microsecond
	for _, c := range []struct{ window, gap, want time.Duration }{
		{0, 10 * time.Microsecond, 50 * time.Microsecond},      // opens at limit/4
		{50 * time.Microsecond, limit, 100 * time.Microsecond}, // doubles
		{100 * time.Microsecond, 0, limit},
		{limit, 10 * time.Microsecond, limit},      // capped
		{limit, limit + 1, 100 * time.Microsecond}, // halves
		{100 * time.Microsecond, time.Second, 50 * time.Microsecond},
		{50 * time.Microsecond, time.Second, 0}, // under limit/4: off
		{0, time.Second, 0},
	} {
		if got := adaptWindow(c.window, c.gap, limit); got != c.want {
			t.Errorf("adaptWindow(%v, gap %v) = %v, want %v", c.window, c.gap, got, c.want)
		}
	}
}
