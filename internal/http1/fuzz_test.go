package http1

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// memConn is a net.Conn that reads a fixed input and records writes.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (m *memConn) Read(p []byte) (int, error)       { return m.in.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return m.out.Write(p) }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConn feeds arbitrary bytes to a connection: the transport must not
// panic, must answer with well-formed HTTP/1.1 responses only, and must
// run the handler at most once per response.
func FuzzConn(f *testing.F) {
	for _, s := range []string{
		"POST /sign HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
		"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
		"GET /%41?q HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		calls := 0
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls++
			b, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Path", r.URL.Path)
			w.Write(b)
		})
		st := &state{srv: &Server{Handler: h, MaxHeaderBytes: 512}, log: slog.New(slog.DiscardHandler), conns: map[*conn]struct{}{}, headerTicks: 5, reqTicks: 15, idTicks: 60}
		mc := &memConn{in: bytes.NewReader(in)}
		c := newConn(st, mc)
		st.conns[c] = struct{}{}
		st.wg.Add(1)
		c.serve()
		br := bufio.NewReader(&mc.out)
		responses := 0
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			if line, _ := br.Peek(12); bytes.Equal(line, []byte("HTTP/1.1 100")) {
				if _, err := http.ReadResponse(br, nil); err != nil {
					t.Fatalf("malformed 100 Continue: %v", err)
				}
				continue
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d does not parse: %v\n%q", responses+1, err, mc.out.Bytes())
			}
			if resp.ContentLength < 0 && resp.StatusCode != 204 && resp.StatusCode != 304 {
				t.Fatalf("response %d has no Content-Length", responses+1)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("response %d body: %v", responses+1, err)
			}
			responses++
		}
		if calls > responses {
			t.Fatalf("handler ran %d times for %d responses", calls, responses)
		}
	})
}
