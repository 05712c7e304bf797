package http1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// conn is one client connection. Everything but the atomics is owned by
// the connection's goroutine.
type conn struct {
	st     *state
	nc     net.Conn
	sock   sockIO // nc's socket, read and written on the hot path
	br     *bufio.Reader
	remote string

	// reqSince is the tick at which the current request's first byte
	// arrived, 0 between requests; headerDone says its header is read;
	// idleSince is the tick at which the connection last became idle.
	reqSince   atomic.Int64
	headerDone atomic.Bool
	idleSince  atomic.Int64
	// served says a request has been answered: until then an idle
	// connection gets ReadHeaderTimeout, not IdleTimeout.
	served atomic.Bool

	// Reused for every request.
	req      http.Request
	url      url.URL
	reqHdr   http.Header
	body     body
	w        response
	out      []byte
	keys     []string
	dateSec  int64
	date     []byte
	sent100  bool
	expect   bool
	closeReq bool
}

func newConn(st *state, nc net.Conn) *conn {
	c := &conn{st: st, nc: nc, remote: nc.RemoteAddr().String(), reqHdr: http.Header{}}
	c.sock.init(nc)
	c.br = bufio.NewReaderSize(markReader{c}, orDefaultInt(st.srv.MaxHeaderBytes, DefaultMaxHeaderBytes))
	c.w.hdr = http.Header{}
	c.body.c = c
	c.idleSince.Store(st.now.Load())
	return c
}

func orDefaultInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// markReader notes when a request's first byte arrives.
type markReader struct{ c *conn }

func (m markReader) Read(p []byte) (int, error) {
	n, err := m.c.sock.read(p)
	if n > 0 && m.c.reqSince.Load() == 0 {
		m.c.reqSince.Store(m.c.st.now.Load())
	}
	return n, err
}

// overdue reports whether the connection has outlived a timeout at tick now.
func (c *conn) overdue(now int64) bool {
	if s := c.reqSince.Load(); s != 0 {
		age := now - s
		return age > c.st.reqTicks || (!c.headerDone.Load() && age > c.st.headerTicks)
	}
	s := c.idleSince.Load()
	if !c.served.Load() {
		return s != 0 && now-s > c.st.headerTicks
	}
	return s != 0 && now-s > c.st.idTicks
}

func (c *conn) serve() {
	defer c.st.forget(c)
	defer c.nc.Close()
	defer func() {
		if v := recover(); v != nil {
			// The stack names code, never request data or keys.
			c.st.log.Error("handler panic; connection closed", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	for {
		keep, err := c.serveOne()
		if err != nil {
			var se *statusError
			if errors.As(err, &se) {
				c.writeError(se)
				c.lingerClose()
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.st.log.Debug("connection ended", "remote", c.remote, "err", err.Error())
			}
			return
		}
		if !keep {
			c.lingerClose()
			return
		}
		now := c.st.now.Load()
		c.served.Store(true)
		c.headerDone.Store(false)
		if c.br.Buffered() > 0 { // a pipelined request is already here
			c.reqSince.Store(now)
		} else {
			c.reqSince.Store(0)
			c.idleSince.Store(now)
			if c.st.closing.Load() {
				return
			}
		}
	}
}

// lingerClose half-closes the connection and reads what the client still
// sends for a moment, so that the kernel does not answer unread request
// bytes with a reset that would destroy the response in flight.
func (c *conn) lingerClose() {
	tc, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	tc.CloseWrite()
	c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, c.nc, maxLinger)
}

// maxLinger bounds what lingerClose reads: enough for a client still
// sending a body a few times the signing server's 1 MiB limit.
const maxLinger = 4 << 20

// serveOne reads one request, runs the handler and writes the response.
// It reports whether the connection may carry another request.
func (c *conn) serveOne() (keep bool, err error) {
	req, err := c.readRequest()
	if err != nil {
		return false, err
	}
	c.headerDone.Store(true)
	if c.st.poller != nil {
		c.st.poller.arrived()
	}
	w := &c.w
	w.reset(req.Method == http.MethodHead)
	c.st.srv.Handler.ServeHTTP(w, req)
	keep = !c.closeReq && !c.st.closing.Load()
	for _, v := range w.hdr["Connection"] { // set by the handler: rare
		if hasToken([]byte(v), "close") {
			keep = false
		}
	}
	if keep && !c.body.finish() {
		keep = false
	}
	if err := c.writeResponse(keep); err != nil {
		return false, err
	}
	if c.st.poller != nil {
		c.st.poller.poke()
	}
	return keep, nil
}

// readRequest reads a request line and header fields into c.req.
func (c *conn) readRequest() (*http.Request, error) {
	limit := orDefaultInt(c.st.srv.MaxHeaderBytes, DefaultMaxHeaderBytes)
	used := 0
	line, err := c.readLine(&used, limit)
	for blank := 0; err == nil && len(line) == 0 && blank < 8; blank++ {
		line, err = c.readLine(&used, limit) // RFC 9112 §2.2: ignore empty lines before a request
	}
	if err != nil {
		return nil, err
	}
	method, target, proto, err := parseRequestLine(line)
	if err != nil {
		return nil, err
	}
	r := &c.req
	*r = http.Request{Method: method, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: c.remote}
	if proto == 0 {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	c.url = url.URL{}
	if err := parseTarget(&c.url, target); err != nil {
		return nil, err
	}
	r.URL = &c.url
	r.RequestURI = string(target)

	clear(c.reqHdr)
	r.Header = c.reqHdr
	var (
		cl                  int64 = -1
		chunked, sawTE      bool
		hosts               int
		connClose, connKeep bool
	)
	c.expect, c.sent100 = false, false
	for n := 0; ; n++ {
		line, err := c.readLine(&used, limit)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if n >= 100 {
			return nil, &statusError{http.StatusRequestHeaderFieldsTooLarge, "too many header fields"}
		}
		key, value, err := parseField(line)
		if err != nil {
			return nil, err
		}
		switch key {
		case "Host":
			hosts++
			r.Host = string(value)
		case "Content-Length":
			v, err := parseContentLength(value)
			if err != nil {
				return nil, err
			}
			if cl >= 0 && cl != v {
				return nil, badRequest("conflicting Content-Length header fields")
			}
			cl = v
		case "Transfer-Encoding":
			if sawTE {
				return nil, badRequest("more than one Transfer-Encoding header field")
			}
			sawTE = true
			if !asciiEqualFold(value, "chunked") {
				return nil, &statusError{http.StatusNotImplemented, "unsupported Transfer-Encoding: send the body with Content-Length or chunked"}
			}
			chunked = true
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			connKeep = connKeep || hasToken(value, "keep-alive")
		case "Expect":
			if !asciiEqualFold(value, "100-continue") {
				return nil, &statusError{http.StatusExpectationFailed, "unsupported Expect header field"}
			}
			c.expect = true
		}
		r.Header[key] = append(r.Header[key], string(value))
	}
	if proto == 1 && hosts != 1 {
		return nil, badRequest("an HTTP/1.1 request needs exactly one Host header field")
	}
	if hosts > 1 {
		return nil, badRequest("more than one Host header field")
	}
	if sawTE && (cl >= 0 || proto == 0) {
		return nil, badRequest("Transfer-Encoding with Content-Length, or in HTTP/1.0")
	}
	c.closeReq = connClose || (proto == 0 && !connKeep)
	r.Close = c.closeReq
	switch {
	case chunked:
		r.ContentLength = -1
		r.TransferEncoding = chunkedTE
		c.body.reset(-1, true)
		r.Body = &c.body
	case cl > 0:
		r.ContentLength = cl
		c.body.reset(cl, false)
		r.Body = &c.body
	default:
		c.body.reset(0, false)
		r.Body = http.NoBody
	}
	return r, nil
}

var chunkedTE = []string{"chunked"}

// readLine returns the next CRLF-terminated line without its CRLF,
// counting its bytes against limit.
func (c *conn) readLine(used *int, limit int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	*used += len(line)
	if errors.Is(err, bufio.ErrBufferFull) || *used > limit {
		return nil, &statusError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}
	}
	if err != nil {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, badRequest("header lines must end with CRLF")
	}
	return line[:len(line)-2], nil
}

// body reads a request body framed by Content-Length or chunked coding.
type body struct {
	c         *conn
	remaining int64 // Content-Length bytes left
	chunked   bool
	cr        io.Reader
	eof       bool
	err       error
}

func (b *body) reset(n int64, chunked bool) {
	*b = body{c: b.c, remaining: n, chunked: chunked, eof: n == 0 && !chunked}
}

// Read implements io.Reader.
func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	c := b.c
	if c.expect && !c.sent100 {
		c.sent100 = true
		if err := c.sock.write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
			b.err = err
			return 0, err
		}
	}
	if b.chunked {
		return b.readChunked(p)
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := c.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		b.eof = true
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *body) readChunked(p []byte) (int, error) {
	if b.cr == nil {
		b.cr = newChunkedReader(b.c.br)
	}
	n, err := b.cr.Read(p)
	if err == io.EOF {
		// The last chunk: read (and drop) the trailer section.
		used := 0
		for {
			line, lerr := b.c.readLine(&used, orDefaultInt(b.c.st.srv.MaxHeaderBytes, DefaultMaxHeaderBytes))
			if lerr != nil {
				b.err = lerr
				return n, lerr
			}
			if len(line) == 0 {
				break
			}
		}
		b.eof = true
		return n, io.EOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close implements io.Closer; what is left of the body is dropped after
// the handler returns.
func (b *body) Close() error { return nil }

// finish drops what the handler left of the body. It reports whether the
// connection can carry another request.
func (b *body) finish() bool {
	if b.eof {
		return true
	}
	if b.err != nil {
		return false
	}
	if b.c.expect && !b.c.sent100 {
		// The client waits for a 100 that will never come, or sends the
		// body anyway: either way the connection's framing is unknown.
		return false
	}
	if !b.chunked && b.remaining > maxDiscard {
		return false // not worth waiting for: answer now and close
	}
	n, err := io.CopyN(io.Discard, b, maxDiscard+1)
	return (errors.Is(err, io.EOF) || (err == nil && b.eof)) && n <= maxDiscard
}
