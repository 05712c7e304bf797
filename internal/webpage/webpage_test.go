package webpage_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/webpage"
)

// The committed WebAssembly module and loader are what the sources build:
// a change to the verifier without `go generate ./internal/webpage` fails
// here. The build is reproducible only with the same toolchain, so another
// Go version skips the comparison, saying so.
func TestWasmIsCurrent(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("SKIPPED: no go command to rebuild the module with")
	}
	want, err := os.ReadFile("static/verify.wasm.go-version")
	if err != nil {
		t.Fatal(err)
	}
	have, err := exec.Command(goBin, "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(have)) != strings.TrimSpace(string(want)) {
		t.Skipf("SKIPPED: the module was built with %s and this is %s: builds differ between versions", bytes.TrimSpace(want), bytes.TrimSpace(have))
	}
	out, err := exec.Command(goBin, "run", "./genwasm", "-check").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// The page is served with its CSP and types; other methods and unknown
// files are refused.
func TestServe(t *testing.T) {
	p, err := webpage.New()
	if err != nil {
		t.Fatal(err)
	}
	for path, ctype := range map[string]string{"/": "text/html; charset=utf-8", "/app.js": "text/javascript; charset=utf-8", "/style.css": "text/css; charset=utf-8", "/wasm_exec.js": "text/javascript; charset=utf-8", "/verify.wasm": "application/wasm"} {
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != ctype || rec.Header().Get("Content-Security-Policy") != webpage.CSP || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", path, rec.Code, rec.Header())
		}
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/static/verify.wasm.gz", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("an unlisted file: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}
