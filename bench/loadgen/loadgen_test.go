package loadgen_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teesign/teesign/bench/loadgen"
)

func TestCountsNon200AsErrors(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "no", http.StatusTeapot)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	res, err := loadgen.Run(context.Background(), loadgen.Config{Addr: addr, Path: "/", Body: []byte("{}"), Conns: 2, Duration: time.Second, MaxRequests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors < res.Requests/3 || res.Errors > res.Requests*2/3 {
		t.Fatalf("%d requests, %d errors: every other answer was a 418", res.Requests, res.Errors)
	}
	if res.Requests > 200 {
		t.Fatalf("%d requests, bound was 200", res.Requests)
	}
	if !(res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.P999) {
		t.Fatalf("percentiles out of order: %v", res)
	}
}

func TestOpenLoopRateAndLoopbackOnly(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer ts.Close()
	res, err := loadgen.Run(context.Background(), loadgen.Config{Addr: strings.TrimPrefix(ts.URL, "http://"), Path: "/", Conns: 4, Rate: 500, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 100 || res.Requests > 750 { // wide: other test packages share the cores
		t.Fatalf("open loop at 500/s for 1 s made %d requests", res.Requests)
	}
	if _, err := loadgen.Run(context.Background(), loadgen.Config{Addr: "192.0.2.1:80", Path: "/"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a non-loopback target was accepted: %v", err)
	}
}
