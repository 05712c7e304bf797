package http1

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// BenchmarkKeepAlive measures one small POST on a keep-alive loopback
// connection, through this transport and, as the baseline in the same
// run, through net/http serving the same handler:
//
//	go test -bench KeepAlive -cpu 1 ./internal/http1/
func BenchmarkKeepAlive(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [256]byte
		io.ReadFull(r.Body, buf[:r.ContentLength])
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Write([]byte(`{"signature":"MEUCIQDxbenchmark","key_type":"secp256k1"}` + "\n"))
	})
	body := `{"key_type":"secp256k1","payload":"benchmark payload 0123456789"}`
	req := []byte("POST /sign HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: 65\r\n\r\n" + body)
	serve := map[string]func(context.Context, net.Listener){
		"http1": func(ctx context.Context, ln net.Listener) {
			(&Server{Handler: h, Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, ln)
		},
		"net-http": func(ctx context.Context, ln net.Listener) {
			srv := &http.Server{Handler: h}
			go func() { <-ctx.Done(); srv.Close() }()
			srv.Serve(ln)
		},
	}
	for _, name := range []string{"net-http", "http1"} {
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { serve[name](ctx, ln); close(done) }()
			defer func() { cancel(); <-done }()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("response: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
			}
		})
	}
}
