package http1

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// maxKeptBuffer is the largest response buffer kept for the next request.
const maxKeptBuffer = 64 << 10

// response is the ResponseWriter: it buffers the body, and the connection
// writes status line, header fields and body in one write.
type response struct {
	hdr    http.Header
	status int
	wrote  bool
	head   bool
	body   []byte
}

func (w *response) reset(head bool) {
	clear(w.hdr)
	if cap(w.body) > maxKeptBuffer {
		w.body = nil
	}
	*w = response{hdr: w.hdr, head: head, body: w.body[:0]}
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.hdr }

// WriteHeader implements http.ResponseWriter. Informational (1xx) codes
// are not sent; the first final code wins.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("http1: invalid WriteHeader code %v", code))
	}
	if w.wrote || code < 200 {
		return
	}
	w.wrote, w.status = true, code
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// WriteString implements io.StringWriter.
func (w *response) WriteString(s string) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.body = append(w.body, s...)
	return len(s), nil
}

// Flush implements http.Flusher; the response leaves when the handler
// returns.
func (w *response) Flush() {}

// managed are the header fields the transport writes itself.
var managed = map[string]bool{"Content-Length": true, "Connection": true, "Transfer-Encoding": true, "Date": true, "Keep-Alive": true, "Trailer": true}

// writeResponse writes the handler's response in one write.
func (c *conn) writeResponse(keep bool) error {
	w := &c.w
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	bodyAllowed := w.status != http.StatusNoContent && w.status != http.StatusNotModified
	if _, ok := w.hdr["Content-Type"]; !ok && bodyAllowed && len(w.body) > 0 {
		w.hdr["Content-Type"] = []string{http.DetectContentType(w.body)}
	}
	out := c.appendStatus(c.out[:0], w.status)
	c.keys = c.keys[:0]
	for k := range w.hdr {
		if !managed[k] && isToken(k) {
			c.keys = append(c.keys, k)
		}
	}
	if len(c.keys) > 1 {
		slices.Sort(c.keys)
	}
	for _, k := range c.keys {
		for _, v := range w.hdr[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	if bodyAllowed {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(w.body)), 10)
		out = append(out, "\r\n"...)
	}
	if !keep {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if bodyAllowed && !w.head {
		out = append(out, w.body...)
	}
	err := c.sock.write(out)
	if cap(out) <= maxKeptBuffer {
		c.out = out[:0]
	} else {
		c.out = nil
	}
	return err
}

// appendStatus appends the status line and the Date field.
func (c *conn) appendStatus(out []byte, code int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	out = append(out, text...)
	out = append(out, "\r\nDate: "...)
	now := time.Now()
	if sec := now.Unix(); sec != c.dateSec || c.date == nil {
		c.dateSec = sec
		c.date = now.UTC().AppendFormat(c.date[:0], http.TimeFormat)
	}
	out = append(out, c.date...)
	return append(out, "\r\n"...)
}

// appendValue appends a header value with control characters replaced by
// spaces, as net/http does, so that no handler can split a response.
func appendValue(out []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if (b < ' ' && b != '\t') || b == 0x7f {
			b = ' '
		}
		out = append(out, b)
	}
	return out
}

// writeError answers a request the transport refused, and marks the
// connection for closing.
func (c *conn) writeError(e *statusError) {
	body, _ := json.Marshal(map[string]string{"error": e.msg})
	body = append(body, '\n')
	out := c.appendStatus(nil, e.code)
	out = append(out, "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(body)), 10)
	out = append(out, "\r\n\r\n"...)
	c.sock.write(append(out, body...))
}
