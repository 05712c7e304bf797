package http1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
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

// dialEcho connects to the echo server; the connection closes with the test.
func dialEcho(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// ask sends body to the echo server and checks that it comes back.
func ask(c net.Conn, br *bufio.Reader, body string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
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

// busyClient asks the echo server at addr in a loop, on a connection of
// its own, until the returned stop is called; stop reports the first
// error.
func busyClient(addr string) (stop func() error) {
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; ; i++ {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			if err := ask(c, br, fmt.Sprint("busy ", i)); err != nil {
				errc <- err
				return
			}
		}
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() { close(done); err = <-errc })
		return err
	}
}

// busyClientProcess runs busyClient in a child process, as real clients
// run. A client in this process would wait in Go's poller, which a
// server polling on one P leaves to the runtime's sysmon (every 10 ms):
// it would not keep the poller busy.
func busyClientProcess(t *testing.T, addr string) (stop func() error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBusyClientChild$")
	cmd.Env = append(os.Environ(), "HTTP1_BUSY_ADDR="+addr)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var werr error
	stop = func() error {
		once.Do(func() {
			in.Close()
			if werr = cmd.Wait(); werr != nil {
				werr = fmt.Errorf("%w\n%s", werr, out.String())
			}
		})
		return werr
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestBusyClientChild is busyClientProcess's child: a busy client until
// its stdin closes.
func TestBusyClientChild(t *testing.T) {
	addr := os.Getenv("HTTP1_BUSY_ADDR")
	if addr == "" {
		t.Skip("run by busyClientProcess")
	}
	stop := busyClient(addr)
	io.Copy(io.Discard, os.Stdin)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
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
	dial := func() (net.Conn, *bufio.Reader) { return dialEcho(t, sv.addr) }

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
	stop := busyClientProcess(t, sv.addr)
	before := bp.rounds.Load()
	half, _ := dial()
	io.WriteString(half, "GET / HTTP/1.1\r\nHo")
	d, ok := closedWithin(half, 3*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("looping client: %v", err)
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

// TestBusyPollDispatch checks the hand-over of readiness. While a busy
// client keeps the poller polling, an idle connection waits to be told
// its socket is readable instead of waiting in Go's poller: it is still
// answered, new connections are still accepted, a client's close and the
// idle timeout still end its goroutine, and once polling stops it is
// answered through Go's poller.
func TestBusyPollDispatch(t *testing.T) {
	const window = 100 * time.Millisecond // rounds outlast any pause of the busy client
	sv, bp := startPolling(t, window, func(s *Server) {
		s.Tick = 50 * time.Millisecond
		s.IdleTimeout = time.Second
	})
	stop := busyClientProcess(t, sv.addr)
	stopBusy := func() {
		if err := stop(); err != nil {
			t.Errorf("busy client: %v", err)
		}
	}
	defer stopBusy()
	// served waits up to d for the server to hold n connections.
	served := func(n int, d time.Duration) bool {
		for end := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
			bp.mu.Lock()
			have := len(bp.conns)
			bp.mu.Unlock()
			if have == n {
				return true
			}
			if time.Now().After(end) {
				t.Logf("%d connections, want %d", have, n)
				return false
			}
		}
	}

	idle, idleBR := dialEcho(t, sv.addr)
	before := bp.dispatched.Load()
	for i := range 20 {
		if err := ask(idle, idleBR, fmt.Sprint("between the busy ones ", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if bp.dispatched.Load() == before {
		t.Fatal("no readiness was handed to a waiting connection")
	}
	for i := range 5 {
		c, br := dialEcho(t, sv.addr)
		if err := ask(c, br, "new connection"); err != nil {
			t.Fatalf("new connection %d while polling: %v", i, err)
		}
		c.Close()
	}
	if !served(2, 500*time.Millisecond) {
		t.Fatal("connections that clients closed while waiting for the poller were not let go")
	}
	// idle waits for the poller, which the busy client keeps busy: only
	// closing it wakes its goroutine.
	if d, ok := closedWithin(idle, 3*time.Second); !ok || d > 2*time.Second {
		t.Fatalf("idle connection while polling: closed %v after %v, want the 1 s idle timeout", ok, d)
	}
	if !served(1, 500*time.Millisecond) {
		t.Fatal("the goroutine of a connection closed for idling while waiting for the poller did not end")
	}
	later, laterBR := dialEcho(t, sv.addr)
	if err := ask(later, laterBR, "just before polling stops"); err != nil {
		t.Fatal(err)
	}
	stopBusy()
	// Polling stops within its window; later, which waited for the
	// poller, must now be answered without it (well inside the 1 s idle
	// timeout).
	time.Sleep(3 * window)
	if err := ask(later, laterBR, "after polling stopped"); err != nil {
		t.Fatalf("connection that waited for the poller when it stopped: %v", err)
	}
}

// TestBusyPollStepsAside checks that a connection whose goroutine waits
// in Go's poller (here, for the rest of a body) is answered promptly while
// a busy client keeps the poller polling: the poller must step aside until
// that connection has read, not only until the next response, or only the
// runtime's sysmon, every 10 ms, polls the network for it. The clients
// run in a child process, as real clients do: in this one, they would
// wait in Go's poller too.
func TestBusyPollStepsAside(t *testing.T) {
	sv, _ := startPolling(t, 20*time.Millisecond, nil)
	cmd := exec.Command(os.Args[0], "-test.run=^TestStepAsideClients$")
	cmd.Env = append(os.Environ(), "HTTP1_STEP_ASIDE_ADDR="+sv.addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("clients: %v\n%s", err, out)
	}
	var med time.Duration
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "median "); ok {
			med, err = time.ParseDuration(v)
		}
	}
	if med == 0 || err != nil {
		t.Fatalf("no median from the clients (%v):\n%s", err, out)
	}
	t.Logf("median %v", med)
	// Promptly is well under a millisecond; left to sysmon, 5 ms on
	// average.
	if med > 2*time.Millisecond {
		t.Errorf("the rest of a body, sent while another client kept the poller busy, was answered after a median %v, want well under 2 ms\n%s", med, out)
	}
}

// TestStepAsideClients is TestBusyPollStepsAside's child process: a busy
// client, and 30 times the rest of a body sent after a pause.
func TestStepAsideClients(t *testing.T) {
	addr := os.Getenv("HTTP1_STEP_ASIDE_ADDR")
	if addr == "" {
		t.Skip("run by TestBusyPollStepsAside")
	}
	stop := busyClient(addr)
	c, br := dialEcho(t, addr)
	var took []time.Duration
	for i := range 30 {
		io.WriteString(c, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab")
		time.Sleep(3 * time.Millisecond) // the server's goroutine now waits for "cd" in Go's poller
		start := time.Now()
		io.WriteString(c, "cd")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.ReadAll(resp.Body)
		took = append(took, time.Since(start))
	}
	if err := stop(); err != nil {
		t.Fatalf("busy client: %v", err)
	}
	slices.Sort(took)
	fmt.Println("all", took)
	fmt.Println("median", took[len(took)/2])
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
