// Package loadgen drives HTTP/1.1 load against a server on loopback: a
// closed loop of N keep-alive connections, or an open loop at a fixed
// rate, bounded by duration and request count. It speaks just enough
// HTTP/1.1 (pre-built requests, Content-Length responses) to stay cheap on
// the load generator's core, and counts every non-200 as an error.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	// Addr is host:port; only loopback addresses are accepted.
	Addr string
	// Path and Body make a POST (Body nil makes a GET).
	Path string
	Body []byte
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
}

// String formats the figures on one line.
func (r Result) String() string {
	return fmt.Sprintf("%.0f req/s (%d requests, %d errors) p50 %v p90 %v p99 %v p99.9 %v",
		r.PerSecond, r.Requests, r.Errors, r.P50, r.P90, r.P99, r.P999)
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
	req := buildRequest(c)
	ctx, cancel := context.WithTimeout(ctx, c.Warmup+c.Duration)
	defer cancel()
	start := time.Now()
	measureFrom := start.Add(c.Warmup)
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
	for i := 0; i < c.Conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn, err := net.Dial("tcp", c.Addr)
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			defer conn.Close()
			go func() { <-ctx.Done(); conn.SetDeadline(time.Now()) }()
			br := bufio.NewReaderSize(conn, 64<<10)
			for ctx.Err() == nil && issued.Add(1) <= c.MaxRequests {
				t0 := time.Now()
				if tickets != nil {
					select {
					case t0 = <-tickets: // latency counts from the scheduled start
					case <-ctx.Done():
						return
					}
				}
				if _, err := conn.Write(req); err != nil {
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
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no request completed")
		}
		return Result{}, fmt.Errorf("loadgen: %w", firstErr)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	elapsed := time.Since(measureFrom)
	q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	return Result{
		Requests: int64(len(all)), Errors: errs.Load(), Duration: elapsed,
		PerSecond: float64(len(all)) / elapsed.Seconds(),
		P50:       q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999),
	}, nil
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

func buildRequest(c Config) []byte {
	var b bytes.Buffer
	method := "GET"
	if c.Body != nil {
		method = "POST"
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, c.Path, c.Addr)
	if c.Body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(c.Body))
	}
	b.WriteString("\r\n")
	b.Write(c.Body)
	return b.Bytes()
}

// readResponse reads one response with a Content-Length body and returns
// its status code.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, err
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
			if err != nil {
				return 0, err
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	_, err = br.Discard(length)
	if err == nil && length > 0 {
		return status, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return status, err
}
