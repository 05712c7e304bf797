package http1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echo answers with what it saw of the request.
func echo(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "body error: %v", err)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s q=%s host=%s ct=%s len=%d te=%v body=%s", r.Method, r.URL.Path, r.Proto, r.URL.RawQuery, r.Host, r.Header.Get("Content-Type"), r.ContentLength, r.TransferEncoding, b)
}

type served struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	st     *Server
}

func start(t *testing.T, h http.Handler, tune func(*Server)) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: slog.New(slog.DiscardHandler)}
	if tune != nil {
		tune(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sv := &served{addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1), st: s}
	go func() { sv.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-sv.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return sv
}

// raw sends req on a new connection and returns every response read
// until the server closes the connection or timeout passes.
func raw(t *testing.T, addr, req string, timeout time.Duration) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return resps, bodies, err == io.EOF || isClosedErr(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading a response body: %v", err)
		}
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
}

func isClosedErr(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "EOF"))
}

func TestWellFormedRequests(t *testing.T) {
	sv := start(t, http.HandlerFunc(echo), nil)
	cases := []struct {
		name, req, want string
		close           bool
	}{
		{"post with Content-Length", "POST /sign HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello", "POST /sign HTTP/1.1 q= host=h ct=application/json len=5 te=[] body=hello", false},
		{"get with query", "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n", "GET /a/b HTTP/1.1 q=x=1&y=2 host=h ct= len=0 te=[] body=", false},
		{"percent-encoded path", "GET /sig%6E HTTP/1.1\r\nHost: h\r\n\r\n", "GET /sign HTTP/1.1 q= host=h ct= len=0 te=[] body=", false},
		{"lower-case names, spaces around values", "POST /x HTTP/1.1\r\nhost:   h  \r\ncontent-length:3\r\n\r\nabc", "POST /x HTTP/1.1 q= host=h ct= len=3 te=[] body=abc", false},
		{"chunked with trailer", "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n", "POST /x HTTP/1.1 q= host=h ct= len=-1 te=[chunked] body=abcde", false},
		{"HTTP/1.0 closes", "GET /x HTTP/1.0\r\n\r\n", "GET /x HTTP/1.0 q= host= ct= len=0 te=[] body=", true},
		{"HTTP/1.0 keep-alive", "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET /x HTTP/1.0 q= host= ct= len=0 te=[] body=", false},
		{"Connection: close", "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "GET /x HTTP/1.1 q= host=h ct= len=0 te=[] body=", true},
		{"empty lines before the request", "\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", "GET /x HTTP/1.1 q= host=h ct= len=0 te=[] body=", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resps, bodies, closed := raw(t, sv.addr, c.req, 300*time.Millisecond)
			if len(resps) != 1 {
				t.Fatalf("%d responses, want 1", len(resps))
			}
			if resps[0].StatusCode != 200 || bodies[0] != c.want {
				t.Errorf("got %d %q\nwant 200 %q", resps[0].StatusCode, bodies[0], c.want)
			}
			if closed != c.close {
				t.Errorf("connection closed: %v, want %v", closed, c.close)
			}
			if resps[0].Header.Get("Date") == "" {
				t.Error("no Date header field")
			}
		})
	}
}

func TestMalformedRequests(t *testing.T) {
	var calls atomic.Int64
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1); echo(w, r) }), func(s *Server) { s.MaxHeaderBytes = 1024 })
	cases := []struct {
		name, req string
		code      int
	}{
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
		{"control character in a value", "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400},
		{"absolute-form target", "GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"asterisk target", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"no target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad percent-encoding", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"HTTP/0.9 style", "GET /\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
		{"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400},
		{"conflicting Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400},
		{"huge Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two Transfer-Encoding fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"gzip Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", 417},
		{"header over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\n", 431},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := calls.Load()
			resps, bodies, closed := raw(t, sv.addr, c.req, 2*time.Second)
			if len(resps) != 1 {
				t.Fatalf("%d responses, want 1", len(resps))
			}
			if resps[0].StatusCode != c.code {
				t.Errorf("status %d (%s), want %d", resps[0].StatusCode, bodies[0], c.code)
			}
			if !strings.HasPrefix(bodies[0], `{"error":`) {
				t.Errorf("body %q is not a JSON error", bodies[0])
			}
			if !closed {
				t.Error("connection left open after a malformed request")
			}
			if calls.Load() != before {
				t.Error("the handler ran for a malformed request")
			}
		})
	}
	// Malformed chunked bodies reach the handler as read errors.
	for _, body := range []string{"zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcdef\r\n0\r\n\r\n", "1\r\na\r\n0\r\n" + strings.Repeat("X: y\r\n", 300)} {
		resps, _, closed := raw(t, sv.addr, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+body, 2*time.Second)
		if len(resps) != 1 || resps[0].StatusCode != 400 || !closed {
			t.Errorf("chunked body %q: %d responses, closed %v", body, len(resps), closed)
		}
	}
}

func TestKeepAliveAndPipelining(t *testing.T) {
	sv := start(t, http.HandlerFunc(echo), nil)
	req := "POST /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\na" +
		"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n" +
		"HEAD /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	c, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(c)
	for i, want := range []string{"POST /1", "GET /2", "POST /3", "HEAD /4"} {
		method, _, _ := strings.Cut(want, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if method == "HEAD" {
			if len(b) != 0 || resp.ContentLength <= 0 {
				t.Errorf("HEAD: body %q, Content-Length %d; want no body and the GET length", b, resp.ContentLength)
			}
			continue
		}
		if !strings.HasPrefix(string(b), want+" ") {
			t.Errorf("response %d: %q, want %q…", i+1, b, want)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: %v, want EOF", err)
	}
}

func TestBodiesAndExpect(t *testing.T) {
	var got atomic.Int64
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ignore":
			w.Write([]byte("ignored"))
		case "/reject":
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		default:
			n, _ := io.Copy(io.Discard, r.Body)
			got.Store(n)
			fmt.Fprint(w, n)
		}
	}), nil)
	// An unread small body is dropped and the connection kept; a large
	// one closes it.
	for _, c := range []struct {
		size  int
		close bool
	}{{10 << 10, false}, {maxDiscard + 10, true}} {
		req := fmt.Sprintf("POST /ignore HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", c.size, strings.Repeat("x", c.size))
		resps, _, closed := raw(t, sv.addr, req, 500*time.Millisecond)
		if len(resps) != 1 || resps[0].StatusCode != 200 || closed != c.close {
			t.Errorf("unread body of %d bytes: %d responses, closed %v (want %v)", c.size, len(resps), closed, c.close)
		}
	}
	// A large unread body is not waited for: the answer comes at once.
	resps, _, closed := raw(t, sv.addr, "POST /ignore HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\nabc", 2*time.Second)
	if len(resps) != 1 || resps[0].StatusCode != 200 || !closed {
		t.Errorf("unread 100 MB body: %d responses, closed %v; want one answer and a close", len(resps), closed)
	}
	// Expect: 100-continue with real curl: the 100 comes when the
	// handler reads, and a handler that refuses the body never asks.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	big := strings.Repeat("y", 3<<20)
	cmd := exec.Command("curl", "-sS", "-v", "--max-time", "10", "-H", "Expect: 100-continue", "--data-binary", "@-", "http://"+sv.addr+"/read")
	cmd.Stdin = strings.NewReader(big)
	out, err := cmd.CombinedOutput()
	if err != nil || got.Load() != int64(len(big)) || !bytes.Contains(out, []byte("HTTP/1.1 100 Continue")) {
		t.Errorf("curl with Expect: err %v, server read %d of %d bytes\n%s", err, got.Load(), len(big), tail(out))
	}
	cmd = exec.Command("curl", "-sS", "-v", "--max-time", "10", "-H", "Expect: 100-continue", "--data-binary", "@-", "http://"+sv.addr+"/reject")
	cmd.Stdin = strings.NewReader(big)
	out, _ = cmd.CombinedOutput()
	if !bytes.Contains(out, []byte("< HTTP/1.1 413")) || bytes.Contains(out, []byte("100 Continue")) {
		t.Errorf("curl with Expect to a refusing handler: want a 413 and no 100\n%s", tail(out))
	}
	// A chunked body from Go's client (unknown length).
	resp, err := http.Post("http://"+sv.addr+"/read", "text/plain", io.MultiReader(strings.NewReader("abc"), strings.NewReader(strings.Repeat("z", 100000))))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "100003" {
		t.Errorf("chunked body from net/http: server read %s bytes, want 100003", b)
	}
}

// smallBuffers makes accepted connections' receive buffers small, so that
// what the kernel holds for a server that stopped reading is small too.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(16 << 10)
	}
	return c, err
}

func TestRefusedBodyStillSending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		})}).Serve(ctx, smallBuffers{ln})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	// A client still sending a refused body can finish sending it after
	// the refusal: the server keeps reading for a moment before it
	// closes, so that the client's writes, and the refusal it has not
	// read yet, are not cut off by a reset.
	rc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	io.WriteString(rc, fmt.Sprintf("POST /reject HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", 2<<20))
	rbr := bufio.NewReader(rc)
	rc.(*net.TCPConn).SetWriteBuffer(16 << 10)
	rc.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(rbr, nil)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
		t.Fatalf("refusal before the body: %v", err)
	}
	chunk := bytes.Repeat([]byte("b"), 64<<10)
	for sent := 0; sent < 2<<20; sent += len(chunk) {
		if _, err := rc.Write(chunk); err != nil {
			t.Fatalf("the server cut the connection after %d of 2 MiB of body: %v", sent, err)
		}
	}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func TestResponseHeaders(t *testing.T) {
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Split", "a\r\nSet-Cookie: evil=1")
		w.Header().Set("Content-Length", "999")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Header()["Bad Name"] = []string{"x"}
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			w.Write([]byte("dropped"))
			return
		}
		w.Write([]byte("<html>hi</html>"))
	}), nil)
	resps, bodies, _ := raw(t, sv.addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /empty HTTP/1.1\r\nHost: h\r\n\r\n", 300*time.Millisecond)
	if len(resps) != 2 {
		t.Fatalf("%d responses, want 2", len(resps))
	}
	h := resps[0].Header
	if h.Get("Set-Cookie") != "" || h.Get("X-Split") != "a  Set-Cookie: evil=1" {
		t.Errorf("a header value split the response: %q", h)
	}
	if resps[0].ContentLength != int64(len("<html>hi</html>")) || bodies[0] != "<html>hi</html>" || len(resps[0].TransferEncoding) != 0 {
		t.Errorf("framing taken from the handler: length %d, TE %v", resps[0].ContentLength, resps[0].TransferEncoding)
	}
	if h.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("sniffed Content-Type %q", h.Get("Content-Type"))
	}
	if _, ok := h["Bad Name"]; ok {
		t.Error("an invalid header name was sent")
	}
	if resps[1].StatusCode != 204 || bodies[1] != "" {
		t.Errorf("204: %d %q", resps[1].StatusCode, bodies[1])
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		w.Write([]byte("ok"))
	}), nil)
	resps, _, closed := raw(t, sv.addr, "GET /panic HTTP/1.1\r\nHost: h\r\n\r\n", time.Second)
	if len(resps) != 0 || !closed {
		t.Errorf("after a panic: %d responses, closed %v", len(resps), closed)
	}
	resps, _, _ = raw(t, sv.addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 300*time.Millisecond)
	if len(resps) != 1 || resps[0].StatusCode != 200 {
		t.Error("the server stopped answering after a handler panic")
	}
}

// closedWithin waits for the server to close c.
func closedWithin(c net.Conn, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	return time.Since(start), err == nil || isClosedErr(err)
}

func TestTimeouts(t *testing.T) {
	sv := start(t, http.HandlerFunc(echo), func(s *Server) {
		s.Tick = 20 * time.Millisecond
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.RequestTimeout = 600 * time.Millisecond
		s.IdleTimeout = 400 * time.Millisecond
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", sv.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	check := func(name string, c net.Conn, min, max time.Duration) {
		t.Helper()
		d, ok := closedWithin(c, 3*time.Second)
		if !ok || d < min || d > max {
			t.Errorf("%s: closed %v after %v, want between %v and %v", name, ok, d, min, max)
		}
	}
	// A connection that never sends a byte gets the header timeout.
	check("silent new connection", dial(), 150*time.Millisecond, 400*time.Millisecond)
	// Half a header.
	c := dial()
	io.WriteString(c, "GET / HTTP/1.1\r\nHo")
	check("partial header", c, 150*time.Millisecond, 400*time.Millisecond)
	// A body that never completes: the request timeout.
	c = dial()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
	check("slow body", c, 500*time.Millisecond, 900*time.Millisecond)
	// After a request, idleness gets the idle timeout.
	c = dial()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	} else {
		io.ReadAll(resp.Body)
	}
	check("idle keep-alive", c, 300*time.Millisecond, 700*time.Millisecond)
}

func TestClientThatDoesNotRead(t *testing.T) {
	big := bytes.Repeat([]byte("r"), 8<<20)
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(big) }), func(s *Server) {
		s.Tick = 20 * time.Millisecond
		s.RequestTimeout = 300 * time.Millisecond
	})
	c, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(time.Second) // never read
	// The server's side is gone once writing to it fails (its kernel
	// answers with a reset). Reading would not tell: what the server had
	// already written still drains, at the pace of TCP's window probes.
	for i := 0; i < 30 && err == nil; i++ {
		_, err = io.WriteString(c, "x")
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil {
		t.Error("connection still open 4 s after a 300 ms request timeout")
	}
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		w.Write([]byte("done"))
	}), nil)
	idle, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", sv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-entered
	sv.cancel()
	if d, ok := closedWithin(idle, 2*time.Second); !ok || d > time.Second {
		t.Errorf("idle connection not closed at shutdown (%v)", d)
	}
	select {
	case <-sv.done:
		t.Fatal("Serve returned with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", sv.addr, 200*time.Millisecond); err == nil {
		t.Error("still accepting connections during shutdown")
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("in-flight request lost at shutdown: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Errorf("in-flight response %q, close %v; want done with Connection: close", b, resp.Close)
	}
	select {
	case err := <-sv.done:
		if err != nil {
			t.Error(err)
		}
		sv.done <- nil // for the cleanup
	case <-time.After(3 * time.Second):
		t.Error("Serve did not return after the last request")
	}
}

func TestNetHTTPClientInterop(t *testing.T) {
	sv := start(t, http.HandlerFunc(echo), nil)
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 50; i++ { // one keep-alive connection, reused
		resp, err := client.Post("http://"+sv.addr+"/sign", "application/json", strings.NewReader(`{"i":`+fmt.Sprint(i)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`body={"i":%d}`, i); !strings.HasSuffix(string(b), want) {
			t.Fatalf("request %d: %q", i, b)
		}
	}
}

func TestHandlerAsksToClose(t *testing.T) {
	sv := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bye" {
			w.Header().Set("Connection", "keep-alive, close")
		}
		w.Write([]byte("ok"))
	}), nil)
	resps, _, closed := raw(t, sv.addr, "GET /stay HTTP/1.1\r\nHost: h\r\n\r\n", 300*time.Millisecond)
	if len(resps) != 1 || resps[0].Close || closed {
		t.Errorf("plain response: %d responses, close header %v, closed %v", len(resps), len(resps) == 1 && resps[0].Close, closed)
	}
	resps, _, closed = raw(t, sv.addr, "GET /bye HTTP/1.1\r\nHost: h\r\n\r\nGET /stay HTTP/1.1\r\nHost: h\r\n\r\n", time.Second)
	if len(resps) != 1 || !resps[0].Close || !closed {
		t.Errorf("handler's Connection: close: %d responses (want 1), closed %v", len(resps), closed)
	}
}
