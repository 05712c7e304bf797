package http1

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Polling shares the core with whatever else runs there: a thread that
// wants the core waits while the poller spins, and requests wait while
// that thread has its turn. So the poller watches for contention and
// stops polling while it lasts; asleep in epoll_wait, the server takes
// the core only for the requests themselves. Measured on the benchmark
// VM with a busy loop on the server's core (both at nice 0, one P,
// ed25519 at 10,000 requests/s, 4 runs each): polling throughout, the
// server took 0.44-0.45 of the core and the median latency was
// 0.9-1.1 ms; with the backoff, 0.41-0.43 and 0.13-0.87 ms, p99 about
// the same. At 5,000/s neither moved.
//
// The signal is the kernel's run delay of the thread that polls
// (/proc/thread-self/schedstat): the time it spent ready to run but
// waiting for its core. On the benchmark VM, with no busy process on
// the core, it was under 1 % of the time in half the 10 ms samples and
// over 20 % in at most 1 in 100, when a kernel thread or containerd ran
// for a few milliseconds; two such samples in a row did not occur in
// 4 s at 0 to 20,000 requests/s (nice 0 and -20). Sharing the core with
// a busy loop, half the samples were over 16 % at 5,000 requests/s and
// over 50 % at 10,000.
const (
	// contentionSample is the least time between two samples of the
	// run delay: reading it costs a few microseconds.
	contentionSample = 10 * time.Millisecond
	// contentionShare is the share of the time between two samples
	// spent waiting for the core above which a sample counts as
	// contended; contentionStrikes contended samples in a row stop
	// polling.
	contentionShare   = 0.20
	contentionStrikes = 2
	// contentionBackoff is how long polling stops for at first; it
	// doubles while contention persists, up to contentionBackoffMax.
	contentionBackoff    = 100 * time.Millisecond
	contentionBackoffMax = 1600 * time.Millisecond
)

// contention tells, from samples taken while polling, when the poller's
// thread has to wait for its core. It is used by the polling goroutine
// only.
type contention struct {
	readDelay func() (tid int, delay time.Duration, err error)

	tid     int           // thread of the last sample; 0 for none
	delay   time.Duration // its run delay
	at      time.Time     // when it was taken
	strikes int           // contended samples in a row
	backoff time.Duration // the next backoff
	broken  bool          // the run delay cannot be read here
}

func newContention() *contention {
	return &contention{readDelay: threadRunDelay, backoff: contentionBackoff}
}

// check samples the run delay if contentionSample has passed since the
// last sample, and returns how long to stop polling for: zero unless
// this sample and the contentionStrikes-1 before it each found the
// thread waiting for its core for more than contentionShare of the time
// since the sample before. A sample on another thread than the last one
// only starts a new measurement.
func (c *contention) check(now time.Time) time.Duration {
	if c.broken || (c.tid != 0 && now.Sub(c.at) < contentionSample) {
		return 0
	}
	tid, delay, err := c.readDelay()
	if err != nil {
		c.broken = true
		return 0
	}
	prevTid, prevDelay, prevAt := c.tid, c.delay, c.at
	c.tid, c.delay, c.at = tid, delay, now
	if prevTid != tid {
		c.strikes = 0
		return 0
	}
	waited, elapsed := delay-prevDelay, now.Sub(prevAt)
	if float64(waited) <= contentionShare*float64(elapsed) {
		c.strikes = 0
		c.backoff = contentionBackoff
		return 0
	}
	if c.strikes++; c.strikes < contentionStrikes {
		return 0
	}
	stop := c.backoff
	c.backoff = min(2*c.backoff, contentionBackoffMax)
	// What happens during the backoff is not polling: measure afresh
	// after it.
	c.tid, c.strikes = 0, 0
	return stop
}

// threadRunDelay reads the calling thread's run delay from
// /proc/thread-self/schedstat ("runtime run_delay timeslices", in
// nanoseconds).
func threadRunDelay() (int, time.Duration, error) {
	tid := unix.Gettid()
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, 0, fmt.Errorf("run delay: %w", err)
	}
	if unix.Gettid() != tid {
		return 0, 0, nil // moved threads midway; no sample
	}
	f := bytes.Fields(b)
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("run delay: unexpected schedstat %q", b)
	}
	d, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil || d < 0 {
		return 0, 0, fmt.Errorf("run delay: unexpected schedstat %q", b)
	}
	return tid, time.Duration(d), nil
}
