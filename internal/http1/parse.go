package http1

import (
	"bytes"
	"net/http"
	"net/http/httputil"
	"net/url"
)

var newChunkedReader = httputil.NewChunkedReader

// parseRequestLine splits "METHOD SP TARGET SP HTTP/1.x". proto is the
// minor version (0 or 1).
func parseRequestLine(line []byte) (method string, target []byte, proto int, err error) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return "", nil, 0, badRequest("malformed request line")
	}
	m := line[:sp1]
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return "", nil, 0, badRequest("malformed request line")
	}
	target, version := rest[:sp2], rest[sp2+1:]
	if !isToken(m) || len(m) > 32 {
		return "", nil, 0, badRequest("malformed method")
	}
	switch string(version) {
	case "HTTP/1.1":
		proto = 1
	case "HTTP/1.0":
		proto = 0
	default:
		if len(version) == 8 && bytes.HasPrefix(version, []byte("HTTP/")) && version[6] == '.' {
			return "", nil, 0, &statusError{http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served"}
		}
		return "", nil, 0, badRequest("malformed HTTP version")
	}
	switch string(m) { // no allocation for the common methods
	case http.MethodGet:
		method = http.MethodGet
	case http.MethodPost:
		method = http.MethodPost
	case http.MethodHead:
		method = http.MethodHead
	default:
		method = string(m)
	}
	return method, target, proto, nil
}

// parseTarget fills u from an origin-form request target ("/path?query").
func parseTarget(u *url.URL, target []byte) error {
	if len(target) == 0 || target[0] != '/' {
		return badRequest("the request target must be a path starting with /")
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return badRequest("invalid character in the request target")
		}
	}
	if bytes.IndexByte(target, '%') < 0 && bytes.IndexByte(target, '#') < 0 {
		path, query, _ := bytes.Cut(target, []byte("?"))
		u.Path = internPath(path)
		u.RawQuery = string(query)
		return nil
	}
	p, err := url.ParseRequestURI(string(target))
	if err != nil {
		return badRequest("malformed request target")
	}
	*u = *p
	return nil
}

// internPath avoids an allocation for the signing server's hot paths.
func internPath(p []byte) string {
	switch string(p) {
	case "/sign":
		return "/sign"
	case "/sign/batch":
		return "/sign/batch"
	}
	return string(p)
}

// parseField splits "Name: value", canonicalizing the name and trimming
// optional whitespace around the value.
func parseField(line []byte) (string, []byte, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return "", nil, badRequest("obsolete line folding is not accepted")
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 || !isToken(line[:i]) {
		return "", nil, badRequest("malformed header field name")
	}
	v := bytes.Trim(line[i+1:], " \t")
	for _, b := range v {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return "", nil, badRequest("invalid character in a header field value")
		}
	}
	return canonicalKey(line[:i]), v, nil
}

// canonicalKey is http.CanonicalHeaderKey without an allocation for the
// fields common on the hot path.
func canonicalKey(name []byte) string {
	for _, k := range commonKeys {
		if len(k) == len(name) && asciiEqualFold(name, k) {
			return k
		}
	}
	return http.CanonicalHeaderKey(string(name))
}

var commonKeys = []string{"Host", "Content-Length", "Content-Type", "Transfer-Encoding",
	"Connection", "Expect", "User-Agent", "Accept", "Accept-Encoding"}

func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 18 {
		return 0, badRequest("invalid Content-Length")
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, badRequest("invalid Content-Length")
		}
		n = n*10 + int64(b-'0')
	}
	return n, nil
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if c := b[i]; c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte(","))
		if asciiEqualFold(bytes.Trim(item, " \t"), tok) {
			return true
		}
	}
	return false
}
