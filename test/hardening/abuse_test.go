package hardening

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// 60 connections each send a 1 MiB body whose field name is DEL bytes
// (an error message that echoed it would be 5 MiB) and never read their
// replies. The server's memory stays bounded and another client's /sign
// keeps its latency: its p99 under the abuse is compared with its p99 in
// the same run before the abuse, so that what the abuse adds is told from
// what this machine and harness cost anyway.
//
// It measures latency, so it runs alone: CI runs it as its own step
// (TEESIGN_ABUSE=1), not among the parallel packages of go test ./....
func TestAbusiveClientsStayBounded(t *testing.T) {
	if os.Getenv("TEESIGN_ABUSE") == "" {
		t.Skip("SKIPPED: a latency measurement, run alone: TEESIGN_ABUSE=1 go test -run TestAbusiveClientsStayBounded ./test/hardening/ (CI does)")
	}
	d := startServe(t, "--log-level", "info")
	before := d.rssKiB(t)
	client := &http.Client{Timeout: 5 * time.Second}
	quiet, _ := signLatencies(t, d, client, 3*time.Second)
	body := `{"` + strings.Repeat("\x7f", 1<<20-16) + `":"x"}`
	req := fmt.Sprintf("POST /sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", d.addr)
			if err != nil {
				return // over the cap: waiting in the backlog is allowed, as is a refusal
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for j := 0; j < 3; j++ { // pipelined: the replies pile up unread
				if _, err := c.Write([]byte(req)); err != nil {
					return
				}
			}
		}()
	}
	// Meanwhile the other client signs.
	abused, maxRSS := signLatencies(t, d, client, 4*time.Second)
	wg.Wait()
	if r := d.rssKiB(t); r > maxRSS {
		maxRSS = r
	}
	for _, c := range conns {
		c.Close()
	}
	t.Logf("RSS %d KiB before, %d KiB at most under abuse; the other client's /sign p99 %v over %d requests before the abuse, %v over %d under it", before, maxRSS, p99(quiet), len(quiet), p99(abused), len(abused))
	if maxRSS > 64<<10 {
		t.Errorf("RSS reached %d KiB under abuse, over 64 MiB", maxRSS)
	}
	// The target is 5 ms at the p99. Here the abusers, the client and the
	// server share two cores, and the client's p99 is already a few
	// milliseconds before any abuse (a minimal net/http server shows the
	// same, asked the same way on this kind of VM): the abuse may add 5 ms
	// to it at most. A request stuck behind the abusers (as behind a FIFO
	// byte budget, hundreds of milliseconds) fails it; what refusing such a
	// body costs is pinned by the signer's TestLongUnknownNameIsNotCopied.
	if added := p99(abused) - p99(quiet); added > 5*time.Millisecond {
		t.Errorf("the abuse added %v to the other client's p99 (%v before, %v under it), over 5 ms", added, p99(quiet), p99(abused))
	}
	// The server still answers.
	resp, err := client.Get("http://" + d.addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the abuse: %v", err)
	}
	resp.Body.Close()
}

// signLatencies signs with client every 5 ms for dur, and returns the
// latencies, sorted, and the server's largest RSS seen meanwhile (KiB).
func signLatencies(t *testing.T, d *daemon, client *http.Client, dur time.Duration) ([]time.Duration, int) {
	t.Helper()
	var lat []time.Duration
	maxRSS := 0
	for deadline := time.Now().Add(dur); time.Now().Before(deadline); {
		start := time.Now()
		resp, err := client.Post("http://"+d.addr+"/sign", "application/json", strings.NewReader(`{"payload":"hello"}`))
		if err != nil {
			t.Fatalf("the well-behaved client: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("the well-behaved client: %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
		if r := d.rssKiB(t); r > maxRSS {
			maxRSS = r
		}
		time.Sleep(5 * time.Millisecond)
	}
	slices.Sort(lat)
	return lat, maxRSS
}

// p99 is the 99th percentile of sorted latencies.
func p99(sorted []time.Duration) time.Duration {
	return sorted[len(sorted)*99/100]
}
