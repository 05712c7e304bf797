// Package loadgen drives HTTP/1.1 load against a server on loopback: a
// closed loop of N keep-alive connections, or an open loop at a fixed
// rate, bounded by duration and request count. It speaks just enough
// HTTP/1.1 (pre-built requests, Content-Length responses) to stay cheap on
// the load generator's core, and counts every non-200 as an error. On
// Linux it busy-polls its sockets from one event loop, so that neither its
// own sleeps nor the cost of waking it show in what it measures.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	// Addr is host:port; only loopback addresses are accepted.
	Addr string
	// Path and Bodies make POSTs whose bodies cycle through Bodies in
	// order, one body a request (no Bodies makes GETs).
	Path   string
	Bodies [][]byte
	// Conns is the number of keep-alive connections (closed loop: each has
	// one request outstanding).
	Conns int
	// Rate, when > 0, makes an open loop: requests start at this many per
	// second whatever the latency, spread over the connections.
	Rate float64
	// Duration and MaxRequests bound the run (whichever comes first).
	Duration    time.Duration
	MaxRequests int64
	// Warmup is excluded from the figures.
	Warmup time.Duration
}

// Result is a run's figures.
type Result struct {
	Requests  int64
	Errors    int64
	Duration  time.Duration
	PerSecond float64
	P50, P90  time.Duration
	P99, P999 time.Duration
	// Behind is how long, in the measured part of an open loop, requests
	// were due that no connection was free to send: the server then had
	// a request outstanding on every connection and was falling behind.
	Behind time.Duration
	// SlowWindows is the fraction of a closed loop's 100 ms windows in
	// which responses came in at under 80 % of the rate of the median
	// window: how unsteady the server's speed was during the run. Both
	// figures come from the Linux event loop and are zero elsewhere.
	SlowWindows float64
}

// String formats the figures on one line.
func (r Result) String() string {
	s := fmt.Sprintf("%.0f req/s (%d requests, %d errors) p50 %v p90 %v p99 %v p99.9 %v",
		r.PerSecond, r.Requests, r.Errors, r.P50, r.P90, r.P99, r.P999)
	if r.Behind > 0 {
		s += fmt.Sprintf("; behind schedule for %v", r.Behind.Round(time.Millisecond))
	}
	if r.SlowWindows > 0 {
		s += fmt.Sprintf("; %.1f %% of 100 ms windows under 80 %% of the median", 100*r.SlowWindows)
	}
	return s
}

// Run performs the load described by c.
func Run(ctx context.Context, c Config) (Result, error) {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return Result{}, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return Result{}, fmt.Errorf("loadgen: %s is not a loopback address: load tests target this machine only", c.Addr)
	}
	if c.Conns <= 0 {
		c.Conns = 1
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 1 << 40
	}
	reqs := buildRequests(c)
	var (
		lat         []time.Duration
		errs        int64
		tl          tally
		measureFrom time.Time // end of the warm-up, which starts once the connections are up
	)
	if eventLoopSupported {
		lat, errs, tl, measureFrom, err = eventLoop(ctx, c, reqs)
	} else {
		lat, errs, measureFrom, err = goroutineLoop(ctx, c, reqs)
	}
	if len(lat) == 0 {
		if err == nil {
			err = errors.New("no request completed")
		}
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	if err != nil && ctx.Err() == nil {
		return Result{}, fmt.Errorf("loadgen: %w", err)
	}
	slices.Sort(lat)
	elapsed := c.Duration
	if t := time.Since(measureFrom); t < elapsed { // stopped early: by MaxRequests or ctx
		elapsed = t
	}
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	res := Result{
		Requests: int64(len(lat)), Errors: errs, Duration: elapsed,
		PerSecond: float64(len(lat)) / elapsed.Seconds(),
		P50:       q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999),
		Behind: tl.behind,
	}
	if c.Rate <= 0 { // the full windows of the measured part
		res.SlowWindows = SlowFraction(tl.windows[:min(int(elapsed/slowWindow), len(tl.windows))])
	}
	return res, nil
}

// slowWindow is the window of Result.SlowWindows.
const slowWindow = 100 * time.Millisecond

// tally is what the event loop notes besides latencies.
type tally struct {
	behind  time.Duration // time behind schedule, open loop
	since   time.Time     // start of the current stretch behind; zero when not behind
	windows []int64       // responses per slowWindow of the measured part
}

// answered counts a response that came in at t.
func (tl *tally) answered(t, measureFrom time.Time) {
	if i := int(t.Sub(measureFrom) / slowWindow); t.After(measureFrom) && i < len(tl.windows) {
		tl.windows[i]++
	}
}

// update notes at now whether requests are waiting for a connection.
func (tl *tally) update(now time.Time, waiting bool) {
	switch {
	case waiting && tl.since.IsZero():
		tl.since = now
	case !waiting && !tl.since.IsZero():
		tl.behind += now.Sub(tl.since)
		tl.since = time.Time{}
	}
}

// SlowFraction is the fraction of counts (events per window of time) under
// 80 % of the median count: how much of a run went at under 80 % of its
// usual speed. It is 0 for no counts.
func SlowFraction(windows []int64) float64 {
	if len(windows) == 0 {
		return 0
	}
	sorted := slices.Clone(windows)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	slow := 0
	for _, n := range windows {
		if float64(n) < 0.8*float64(med) {
			slow++
		}
	}
	return float64(slow) / float64(len(windows))
}

// goroutineLoop runs one goroutine per connection, closed loop or open
// loop fed by a Go timer, where the event loop is not available.
func goroutineLoop(ctx context.Context, c Config, reqs [][]byte) ([]time.Duration, int64, time.Time, error) {
	conns := make([]net.Conn, 0, c.Conns)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for len(conns) < c.Conns {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.Addr)
		if err != nil {
			return nil, 0, time.Time{}, err
		}
		conns = append(conns, conn)
	}
	measureFrom := time.Now().Add(c.Warmup) // the connections are up
	ctx, cancel := context.WithDeadline(ctx, measureFrom.Add(c.Duration))
	defer cancel()
	var issued, errs atomic.Int64
	lat := make([][]time.Duration, c.Conns)
	var tickets chan time.Time
	if c.Rate > 0 {
		tickets = make(chan time.Time, c.Conns)
		go schedule(ctx, c.Rate, tickets)
	}
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for i, conn := range conns {
		wg.Add(1)
		go func(i int, conn net.Conn) {
			defer wg.Done()
			go func() { <-ctx.Done(); conn.SetDeadline(time.Now()) }()
			br := bufio.NewReaderSize(conn, 64<<10)
			for n := issued.Add(1); ctx.Err() == nil && n <= c.MaxRequests; n = issued.Add(1) {
				t0 := time.Now()
				if tickets != nil {
					select {
					case t0 = <-tickets: // latency counts from the scheduled start
					case <-ctx.Done():
						return
					}
				}
				if _, err := conn.Write(reqs[(n-1)%int64(len(reqs))]); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					return
				}
				status, err := readResponse(br)
				end := time.Now()
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						errOnce.Do(func() { firstErr = err })
					}
					return
				}
				if t0.Before(measureFrom) {
					continue
				}
				if status != 200 {
					errs.Add(1)
				}
				lat[i] = append(lat[i], end.Sub(t0))
			}
		}(i, conn)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return all, errs.Load(), measureFrom, firstErr
}

func schedule(ctx context.Context, rate float64, out chan<- time.Time) {
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	for {
		now := time.Now()
		for !next.After(now) {
			select {
			case out <- next:
			case <-ctx.Done():
				return
			}
			next = next.Add(interval)
		}
		select {
		case <-time.After(next.Sub(now)):
		case <-ctx.Done():
			return
		}
	}
}

// buildRequests returns the wire form of each request the run cycles
// through: one per body, or a single GET.
func buildRequests(c Config) [][]byte {
	if len(c.Bodies) == 0 {
		return [][]byte{[]byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", c.Path, c.Addr))}
	}
	reqs := make([][]byte, len(c.Bodies))
	for i, body := range c.Bodies {
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.Path, c.Addr, len(body))
		b.Write(body)
		reqs[i] = b.Bytes()
	}
	return reqs
}

// Payloads returns the first n of the distinct messages the benchmarks
// sign: the load tool's requests and the in-process limit use the same
// ones, since how fast a message signs can depend on the message (see
// SignBodies).
func Payloads(n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = "benchmark payload " + strconv.Itoa(i)
	}
	return p
}

// SignBodies returns the JSON bodies of a run against /sign (batch 0) or
// /sign/batch for keyType. A /sign run cycles through Payloads(distinct),
// one a request; each /sign/batch request carries Payloads(batch).
//
// Distinct payloads matter: secp256k1 signing looks up a precomputed table
// at offsets taken from its nonce, and RFC 6979 derives the nonce from
// the message, so signing one message over and over keeps the same table
// entries in cache and runs some 5 % faster than signing many (ed25519
// reads its tables in constant time and shows no difference).
func SignBodies(keyType string, batch, distinct int) [][]byte {
	if batch > 0 {
		b, _ := json.Marshal(map[string]any{"key_type": keyType, "payloads": Payloads(batch)})
		return [][]byte{b}
	}
	bodies := make([][]byte, max(distinct, 1))
	for i, p := range Payloads(len(bodies)) {
		bodies[i], _ = json.Marshal(map[string]string{"key_type": keyType, "payload": p})
	}
	return bodies
}

// readResponse reads one response with a Content-Length body and returns
// its status code.
func readResponse(br *bufio.Reader) (int, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		status, size, err := parseResponse(b)
		if err != nil {
			return 0, err
		}
		if size > 0 {
			_, err := br.Discard(size)
			return status, err
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}

// parseResponse parses the response at the start of b. It returns the
// status code and the response's size in bytes, or size 0 when b does not
// hold all of it yet. Only Content-Length framing is understood.
func parseResponse(b []byte) (status, size int, err error) {
	head := bytes.Index(b, []byte("\r\n\r\n"))
	if head < 0 {
		if len(b) > 64<<10 {
			return 0, 0, errors.New("response header over 64 KiB")
		}
		return 0, 0, nil
	}
	line, rest, _ := bytes.Cut(b[:head], []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(h) > 15 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
			if err != nil || length < 0 {
				return 0, 0, fmt.Errorf("bad Content-Length %q", h)
			}
		}
	}
	if length < 0 {
		return 0, 0, errors.New("response without Content-Length")
	}
	if size = head + 4 + length; size > len(b) {
		return 0, 0, nil
	}
	return status, size, nil
}
