// Package webpage is the verifier's page: plain HTML, CSS and JavaScript,
// and package verify compiled to WebAssembly, so that a signature is
// checked in the reader's browser. The WebAssembly module
// (static/verify.wasm.gz) and Go's loader for it (static/wasm_exec.js)
// are made from ./wasm by `go generate ./internal/webpage` and committed,
// so that `go build` and `go install` embed them; a test fails when they
// are out of date.
package webpage

//go:generate go run ./genwasm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// Names returns the page's file names, as a web host serves them.
func Names() []string {
	return []string{"index.html", "style.css", "app.js", "wasm_exec.js", "verify.wasm"}
}

// CSP is the page's Content-Security-Policy: its scripts, styles and
// requests are its own origin's only, so nothing the user gives can be
// sent elsewhere, even by a bug.
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Page serves the page's files. Its zero value is not usable: use New.
type Page struct {
	wasmGz   []byte
	wasmOnce sync.Once
	wasm     []byte
	wasmErr  error
}

// New returns the page, or an error when this build has no WebAssembly
// module (run `go generate ./internal/webpage`).
func New() (*Page, error) {
	gz, err := static.ReadFile("static/verify.wasm.gz")
	if err != nil {
		return nil, fmt.Errorf("webpage: this teesign was built without the verifier's WebAssembly module: run `go generate ./internal/webpage`: %w", err)
	}
	return &Page{wasmGz: gz}, nil
}

// Wasm returns the WebAssembly module, uncompressed.
func (p *Page) Wasm() ([]byte, error) {
	p.wasmOnce.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(p.wasmGz))
		if err != nil {
			p.wasmErr = err
			return
		}
		p.wasm, p.wasmErr = io.ReadAll(zr)
	})
	return p.wasm, p.wasmErr
}

// File returns one of the files Names lists.
func (p *Page) File(name string) ([]byte, error) {
	if name == "verify.wasm" {
		return p.Wasm()
	}
	for _, f := range Names() {
		if f == name {
			return static.ReadFile("static/" + name)
		}
	}
	return nil, fmt.Errorf("webpage: no file %q", name)
}

var types = map[string]string{
	".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
	".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm",
}

// ServeHTTP serves the page at "/" and its files beside it (GET and HEAD),
// with the CSP and without letting browsers guess types. verify.wasm goes
// gzip-compressed to clients that accept it.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	var body []byte
	var err error
	if name == "verify.wasm" && acceptsGzip(r) {
		body = p.wasmGz
		h.Set("Content-Encoding", "gzip")
		h.Set("Vary", "Accept-Encoding")
	} else if body, err = p.File(name); err != nil {
		http.NotFound(w, r)
		return
	}
	h.Set("Content-Type", types[filepath.Ext(name)])
	sum := sha256.Sum256(body)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// WriteStatic writes the page's files into dir, for any static web host.
// Such a host has no collateral proxy and no registry: the page's checks
// are then offline unless the host forwards /collateral/ to a teesign
// verifier service.
func (p *Page) WriteStatic(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range Names() {
		data, err := p.File(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return fmt.Errorf("webpage: %w", err)
		}
	}
	return nil
}
