package hardening

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// 60 connections each send a 1 MiB body whose field name is DEL bytes
// (an error message that echoed it would be 5 MiB) and never read their
// replies. The server's memory stays bounded and another client's /sign
// keeps its latency.
//
// It measures latency, so it runs alone: CI runs it as its own step
// (TEESIGN_ABUSE=1), not among the parallel packages of go test ./....
func TestAbusiveClientsStayBounded(t *testing.T) {
	if os.Getenv("TEESIGN_ABUSE") == "" {
		t.Skip("SKIPPED: a latency measurement, run alone: TEESIGN_ABUSE=1 go test -run TestAbusiveClientsStayBounded ./test/hardening/ (CI does)")
	}
	d := startServe(t, "--log-level", "info")
	before := d.rssKiB(t)
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
	// Meanwhile another client signs.
	client := &http.Client{Timeout: 5 * time.Second}
	var lat []time.Duration
	deadline := time.Now().Add(4 * time.Second)
	maxRSS := 0
	for time.Now().Before(deadline) {
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
	wg.Wait()
	if r := d.rssKiB(t); r > maxRSS {
		maxRSS = r
	}
	for _, c := range conns {
		c.Close()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[len(lat)*99/100]
	t.Logf("RSS %d KiB before, %d KiB at most under abuse; the other client's /sign p99 %v over %d requests", before, maxRSS, p99, len(lat))
	if maxRSS > 64<<10 {
		t.Errorf("RSS reached %d KiB under abuse, over 64 MiB", maxRSS)
	}
	// The target is 5 ms; on the 2-core CI VM this harness measures a p99
	// of about 3 ms with no abuse at all and 5-7 ms under it (bench notes),
	// so the test fails at twice the target: a request stuck behind the
	// abusers (the FIFO byte budget did that: 291 ms) cannot pass.
	if p99 > 10*time.Millisecond {
		t.Errorf("the other client's p99 was %v, over 10 ms", p99)
	}
	// The server still answers.
	resp, err := client.Get("http://" + d.addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the abuse: %v", err)
	}
	resp.Body.Close()
}
