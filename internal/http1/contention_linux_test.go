package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestContentionCheck drives the contention rule with a made-up run
// delay: samples at most every contentionSample; a backoff only after
// contentionStrikes samples in a row in which the thread waited for its
// core for more than contentionShare of the time; backoffs doubling
// while contention persists and back to the first once it has gone; a
// fresh measurement after each backoff and on another thread; and
// nothing more once the run delay cannot be read.
func TestContentionCheck(t *testing.T) {
	var (
		tid   = 7
		delay time.Duration
		err   error
		reads int
	)
	c := newContention()
	c.readDelay = func() (int, time.Duration, error) {
		reads++
		return tid, delay, err
	}
	now := time.Unix(1000, 0)
	step := func(d, waited time.Duration, want time.Duration, what string) {
		t.Helper()
		now = now.Add(d)
		delay += waited
		if got := c.check(now); got != want {
			t.Fatalf("%s: check = %v, want %v", what, got, want)
		}
	}
	const ms = time.Millisecond
	if contentionStrikes != 2 {
		t.Fatalf("this test is written for 2 strikes, not %d", contentionStrikes)
	}

	step(0, 0, 0, "first sample")
	step(5*ms, 0, 0, "before contentionSample")
	if reads != 1 {
		t.Fatalf("read the run delay %d times within contentionSample, want once", reads)
	}
	step(5*ms, 2*ms, 0, "waited 2 ms of 10, the most that is no contention")
	step(10*ms, 3*ms, 0, "one contended sample")
	step(10*ms, 0, 0, "a clean sample in between")
	step(10*ms, 3*ms, 0, "one contended sample again")
	step(10*ms, 5*ms, contentionBackoff, "two contended samples in a row")
	step(ms, 9*ms, 0, "the sample after a backoff only starts a measurement")
	step(10*ms, 6*ms, 0, "contended once more")
	step(10*ms, 6*ms, 2*contentionBackoff, "and again: the backoff doubles")
	for _, want := range []time.Duration{4, 8, 16, 16} {
		step(0, 0, 0, "after a backoff")
		step(10*ms, 9*ms, 0, "contention persists")
		step(10*ms, 9*ms, want*contentionBackoff, "contention persists")
	}
	step(0, 0, 0, "after a backoff")
	step(10*ms, 0, 0, "contention gone")
	step(10*ms, 6*ms, 0, "new contention")
	step(10*ms, 6*ms, contentionBackoff, "new contention starts from the first backoff")

	step(0, 0, 0, "after a backoff")
	step(10*ms, 9*ms, 0, "one strike")
	tid = 8
	step(10*ms, 9*ms, 0, "a sample on another thread")
	step(10*ms, 9*ms, 0, "the first strike on that thread")
	step(10*ms, 9*ms, 2*contentionBackoff, "the second")

	err = errors.New("no schedstat")
	step(0, 0, 0, "unreadable")
	n := reads
	step(10*ms, 9*ms, 0, "after an error")
	step(time.Second, 9*ms, 0, "after an error")
	if reads != n {
		t.Errorf("read the run delay %d more times after it failed, want none", reads-n)
	}
}

// TestThreadRunDelay reads this thread's run delay, where the kernel
// keeps it: the second field of its schedstat, read here through
// /proc/self/task/TID between two calls, must lie between them.
func TestThreadRunDelay(t *testing.T) {
	if _, err := os.Stat("/proc/thread-self/schedstat"); err != nil {
		t.Skipf("no run delay here: %v", err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid, d1, err := threadRunDelay()
	if err != nil {
		t.Fatal(err)
	}
	if tid != unix.Gettid() {
		t.Fatalf("tid %d, want this thread's %d", tid, unix.Gettid())
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("schedstat %q", b)
	}
	mid, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	_, d2, err := threadRunDelay()
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(mid) < d1 || time.Duration(mid) > d2 {
		t.Errorf("run delay %v, then %v in schedstat, then %v: not the same counter", d1, time.Duration(mid), d2)
	}
}

// TestBusyPollBacksOffUnderContention runs a polling server on one P in
// a child process pinned to one core, and a busy loop pinned to the same
// core: the poller must stop polling while the loop runs, and poll again
// once it has gone.
func TestBusyPollBacksOffUnderContention(t *testing.T) {
	if os.Getenv(contentionChildEnv) != "" {
		contentionChild(t)
		return
	}
	if testing.Short() {
		t.Skip("runs two child processes for a few seconds")
	}
	if _, err := os.Stat("/proc/thread-self/schedstat"); err != nil {
		t.Skipf("no run delay here: %v", err)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Fatalf("this test pins processes with taskset (util-linux): %v", err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := 0; i < 1024 && cpu < 0; i++ {
		if set.IsSet(i) {
			cpu = i
		}
	}
	core := strconv.Itoa(cpu)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, "taskset", "-c", core, os.Args[0], "-test.run=^TestBusyPollBacksOffUnderContention$")
	child.Env = append(os.Environ(), contentionChildEnv+"=1")
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := child.Wait(); err != nil {
			t.Errorf("server process: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("server process did not say where it listens: %v", err)
	}
	addr := strings.TrimSpace(line)

	// burst keeps four connections asking for d; stats reads the
	// poller's counters.
	ask := func(c net.Conn, br *bufio.Reader, path string) string {
		t.Helper()
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	dial := func() (net.Conn, *bufio.Reader) { return dialTest(t, addr) }
	burst := func(d time.Duration) {
		t.Helper()
		var wg sync.WaitGroup
		for range 4 {
			c, br := dial()
			wg.Go(func() {
				for end := time.Now().Add(d); time.Now().Before(end); {
					if _, err := fmt.Fprint(c, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
						t.Error(err)
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Error(err)
						return
					}
					io.ReadAll(resp.Body)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	sc, sbr := dial()
	stats := func() (rounds, backoffs int64) {
		t.Helper()
		s := ask(sc, sbr, "/stats")
		if _, err := fmt.Sscanf(s, "rounds=%d backoffs=%d", &rounds, &backoffs); err != nil {
			t.Fatalf("stats %q: %v", s, err)
		}
		return rounds, backoffs
	}

	burst(300 * time.Millisecond)
	r0, quiet0 := stats()
	if r0 == 0 {
		t.Fatal("the server did not poll at all")
	}
	// Logged, not asserted: this test's own client, and other tests'
	// processes, may share the core too.
	t.Logf("%d backoffs in 300 ms without a busy loop", quiet0)

	hog := exec.CommandContext(ctx, "taskset", "-c", core, "sh", "-c", "while :; do :; done")
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	hogDone := false
	stopHog := func() {
		if !hogDone {
			hogDone = true
			hog.Process.Kill()
			hog.Wait()
		}
	}
	defer stopHog()
	_, b0 := stats()
	burst(time.Second)
	_, b1 := stats()
	stopHog()
	if b1 == b0 {
		t.Fatalf("the poller did not back off while a busy loop shared its core")
	}
	t.Logf("%d backoffs in 1 s of a busy loop on core %s", b1-b0, core)

	// The longest backoff passes, and polling resumes.
	time.Sleep(contentionBackoffMax + 100*time.Millisecond)
	r1, _ := stats()
	burst(300 * time.Millisecond)
	if r2, _ := stats(); r2 == r1 {
		t.Error("the poller did not poll again once the busy loop had gone")
	}
}

const contentionChildEnv = "HTTP1_CONTENTION_SERVER"

// contentionChild is the server process of
// TestBusyPollBacksOffUnderContention: it polls on one P, answers /stats
// with the poller's counters, prints its address and serves until its
// standard input closes.
func contentionChild(t *testing.T) {
	runtime.GOMAXPROCS(1)
	var poller atomic.Pointer[busyPoller]
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bp := poller.Load(); r.URL.Path == "/stats" && bp != nil {
			fmt.Fprintf(w, "rounds=%d backoffs=%d", bp.rounds.Load(), bp.backoffs.Load())
			return
		}
		echo(w, r)
	})
	sv := start(t, h, func(s *Server) {
		s.BusyPoll = 50 * time.Microsecond
		s.pollerStarted = func(p *busyPoller) { poller.Store(p) }
	})
	fmt.Println(sv.addr)
	io.Copy(io.Discard, os.Stdin)
}
