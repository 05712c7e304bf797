// Package browser_test drives the verifier page in Chromium (Debian's
// chromium, through chromedp): a bundle made by a running signing server
// verifies in the browser, tampered bundles fail by the right check, the
// page logs no error, and no request carries the message or signature.
package browser_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/verify"
)

var bin string

func TestMain(m *testing.M) { testutil.MainWithTeesign(m, &bin) }

// chromium finds Debian's chromium (or another Chrome).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Missing(t, "the browser test needs chromium (Debian: apt-get install chromium; .ci/run installs it)")
	return ""
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// browser records what the page does: console errors, exceptions, error
// log entries, and every request with its body.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	errors   []string
	requests []string // URL and body of each request
}

func newBrowser(t *testing.T, exe string) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.WindowSize(1100, 1500))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // open the tab first, so that Listen misses nothing
		t.Fatalf("start chromium: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errors = append(b.errors, "console.error: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			b.errors = append(b.errors, "exception: "+(&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				b.errors = append(b.errors, "log: "+e.Entry.Text+" "+e.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			var body strings.Builder
			for _, entry := range e.Request.PostDataEntries {
				body.Write(entry.Bytes)
			}
			b.requests = append(b.requests, e.Request.Method+" "+e.Request.URL+" "+body.String())
		}
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return b
}

// verdict is what the page shows for one verification.
type verdict struct {
	Valid     string            `json:"valid"`
	ElapsedMS string            `json:"elapsed"`
	Checks    map[string]string `json:"checks"`
	Text      string            `json:"text"`
}

// open loads the page at u and waits for its verdict.
func (b *browser) open(t *testing.T, u string) verdict {
	t.Helper()
	err := chromedp.Do(b.ctx,
		chromedp.Navigate("about:blank"),
		chromedp.Navigate(u),
		chromedp.WaitVisible("#verdict"),
	)
	if err != nil {
		t.Fatalf("page %s: %v", u, err)
	}
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[verdict](`({
			valid: document.getElementById("verdict").dataset.valid,
			elapsed: document.getElementById("verdict").dataset.elapsedMs || "",
			text: document.getElementById("verdict").textContent,
			checks: Object.fromEntries([...document.querySelectorAll("[data-check]")].map(e => [e.dataset.check, e.dataset.status])),
		})`))
	if err != nil {
		t.Fatalf("page %s: %v", u, err)
	}
	return v
}

func (b *browser) screenshot(t *testing.T, name string) {
	dir := os.Getenv("TEESIGN_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifierPageInBrowser(t *testing.T) {
	exe := chromium(t)
	dir := t.TempDir()
	compose := []byte(testutil.ComposeYAML)
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), compose, 0o644)
	state := filepath.Join(dir, "state")
	signAddr := freeAddr(t)
	testutil.Start(t, bin, nil, "serve", "--tee", "sim-tdx", "--compose", filepath.Join(dir, "docker-compose.yaml"), "--state", state, "--listen", signAddr)

	// A bundle from the running signing server.
	const message = "My Secret Message"
	resp, err := http.Post("http://"+signAddr+"/sign", "application/json", strings.NewReader(`{"key_type":"ed25519","payload":"`+message+`","bundle":true}`))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var signed struct {
		Signature string          `json:"signature"`
		Bundle    json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(data, &signed); err != nil || signed.Bundle == nil {
		t.Fatalf("sign: %s", data)
	}
	testutil.CheckBundleSchema(t, signed.Bundle)
	root, err := os.ReadFile(filepath.Join(state, simtee.TDXRootFile))
	if err != nil {
		t.Fatal(err)
	}

	// The verifier service, its collateral from a simulated PCS.
	pcs, err := simtee.NewPCS(state, simtee.PCSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pcsSrv := httptest.NewServer(pcs)
	defer pcsSrv.Close()
	vAddr := freeAddr(t)
	testutil.Start(t, bin, nil, "verifier", "serve", "--listen", vAddr, "--pccs-url", pcsSrv.URL, "--registry", filepath.Join(state, "sim-registry"), "--cache-dir", filepath.Join(dir, "cache"))
	page := "http://" + vAddr + "/"

	b := newBrowser(t, exe)
	link := func(bundle []byte, extra string) string {
		return page + "#bundle=" + b64url(bundle) + "&trust_root=" + b64url(root) + extra
	}
	want := func(name string, v verdict, valid string, checks map[string]string) {
		t.Helper()
		if v.Valid != valid {
			t.Errorf("%s: data-valid=%q, want %q (%s) %v", name, v.Valid, valid, v.Text, v.Checks)
		}
		for c, s := range checks {
			if v.Checks[c] != s {
				t.Errorf("%s: check %s is %q, want %q (%v)", name, c, v.Checks[c], s, v.Checks)
			}
		}
	}
	allPass := map[string]string{"quote_signature": "pass", "cert_chain": "pass", "tcb_status": "pass", "policy": "pass", "key_binding": "pass", "signature": "pass"}

	// Valid, pinned by the compose file against the registry, collateral
	// through the service's proxy.
	v := b.open(t, link(signed.Bundle, "&compose="+b64url(compose)))
	want("bundle with its compose file", v, "true", map[string]string{"quote_signature": "pass", "cert_chain": "pass", "tcb_status": "pass", "policy": "pass", "workload": "pass", "key_binding": "pass", "signature": "pass"})
	b.screenshot(t, "verifier-valid.png")
	// Valid for any workload, asked explicitly.
	want("bundle, any workload", b.open(t, link(signed.Bundle, "&any_workload=1")), "true", allPass)
	// Nothing pinned: not valid, the policy check says so.
	want("bundle, nothing pinned", b.open(t, link(signed.Bundle, "")), "false", map[string]string{"policy": "fail", "signature": "pass"})

	var fields map[string]any
	json.Unmarshal(signed.Bundle, &fields)
	edited := func(field string, edit func(string) string) []byte {
		m := map[string]any{}
		for k, v := range fields {
			m[k] = v
		}
		m[field] = edit(m[field].(string))
		out, _ := json.Marshal(m)
		return out
	}
	// One signature byte changed.
	badSig := edited("signature", func(s string) string {
		raw, _ := base64.StdEncoding.DecodeString(s)
		raw[5] ^= 0x01
		return base64.StdEncoding.EncodeToString(raw)
	})
	want("changed signature byte", b.open(t, link(badSig, "&any_workload=1")), "false", map[string]string{"signature": "fail", "quote_signature": "pass", "key_binding": "pass"})
	b.screenshot(t, "verifier-invalid.png")
	// One MRTD byte of the quote flipped (TDX v4: header 48 bytes, MRTD at
	// body offset 136).
	badQuote := edited("quote", func(s string) string {
		raw, _ := hex.DecodeString(s)
		raw[48+136] ^= 0x01
		return hex.EncodeToString(raw)
	})
	want("flipped measurement byte", b.open(t, link(badQuote, "&any_workload=1")), "false", map[string]string{"quote_signature": "fail"})

	// The real SecretVM sample, offline: how long the page takes.
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sample, _ := json.Marshal(map[string]any{
		"media_type": "application/vnd.teesign.bundle.v1+json", "tee": "tdx", "key_type": "ed25519", "signature_format": "der",
		"public_key": string(testutil.SampleFile(t, "public_key.pem")), "quote": strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt"))),
		"message": base64.StdEncoding.EncodeToString([]byte(message)), "signature": base64.StdEncoding.EncodeToString(k.Sign([]byte(message))),
	})
	var pageMS []float64
	var loads []time.Duration
	for range 3 {
		start := time.Now()
		v = b.open(t, page+"#bundle="+b64url(sample)+"&any_workload=1&offline=1")
		loads = append(loads, time.Since(start))
		want("SecretVM sample, offline", v, "true", map[string]string{"quote_signature": "pass", "cert_chain": "pass", "tcb_status": "unchecked", "signature": "pass"})
		ms, _ := strconv.ParseFloat(v.ElapsedMS, 64)
		pageMS = append(pageMS, ms)
	}
	// The same verification natively, in this process, for the ratio.
	sb, err := bundle.Decode(sample)
	if err != nil {
		t.Fatal(err)
	}
	var native []float64
	for range 3 {
		start := time.Now()
		if res, err := verify.VerifyBundle(context.Background(), sb, verify.Options{AnyWorkload: true, Offline: true}); err != nil || !res.Valid {
			t.Fatalf("native: %v %+v", err, res)
		}
		native = append(native, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(pageMS)
	slices.Sort(native)
	slices.Sort(loads)
	t.Logf("page: the SecretVM sample verifies in %.1f ms in the page's WebAssembly (median of 3; native Go %.2f ms, ratio %.1f); %v from navigation to verdict, module load included",
		pageMS[1], native[1], pageMS[1]/native[1], loads[1].Round(time.Millisecond))

	// On a phone's width nothing overflows sideways; every control has a
	// label, and the drop zone and buttons are reachable by keyboard.
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	b.open(t, link(signed.Bundle, "&any_workload=1"))
	layout, err := chromedp.Run(b.ctx, chromedp.Evaluate[map[string]any](`({
		overflow: document.documentElement.scrollWidth - window.innerWidth,
		unlabelled: [...document.querySelectorAll("input, textarea, select")].filter(e => e.labels.length === 0 && !e.getAttribute("aria-label")).map(e => e.id),
		unfocusable: ["drop", "verify-button", "share"].filter(id => document.getElementById(id).tabIndex < 0),
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if layout["overflow"].(float64) > 0 || len(layout["unlabelled"].([]any)) > 0 || len(layout["unfocusable"].([]any)) > 0 {
		t.Errorf("phone layout and accessibility: %v", layout)
	}
	if err := chromedp.Do(b.ctx, chromedp.ResetViewport()); err != nil {
		t.Fatal(err)
	}

	// What the page did: no errors, and no request carrying the message or
	// the signature; only its own origin asked, collateral through it.
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(b.errors, "\n"))
	}
	sigRaw, _ := base64.StdEncoding.DecodeString(signed.Signature)
	secrets := []string{message, url.QueryEscape(message), base64.StdEncoding.EncodeToString([]byte(message)), b64url([]byte(message)), hex.EncodeToString([]byte(message)),
		signed.Signature, url.QueryEscape(signed.Signature), b64url(sigRaw), hex.EncodeToString(sigRaw)}
	collateral := 0
	for _, r := range b.requests {
		for _, s := range secrets {
			if strings.Contains(r, s) {
				t.Errorf("a request carries the message or signature (%q): %.200s", s, r)
			}
		}
		u := strings.Fields(r)[1]
		if !strings.HasPrefix(u, page) && u != "about:blank" && !strings.HasPrefix(u, "data:") {
			t.Errorf("a request left the page's origin: %s", u)
		}
		if strings.Contains(u, "/collateral/") {
			collateral++
		}
	}
	if collateral == 0 {
		t.Errorf("no collateral request went through the service: %v", b.requests)
	}
	t.Logf("%d requests, %d of them collateral", len(b.requests), collateral)
}

// The page's files: served with the CSP, the module as application/wasm
// (gzip when accepted), and the same files written for a static host.
func TestPageFiles(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	testutil.Start(t, bin, nil, "verifier", "serve", "--listen", addr, "--offline")
	get := func(path, enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Accept-Encoding", enc)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, body := get("/", "")
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`id="verdict"`)) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "connect-src 'self'") {
		t.Fatalf("/: %d %v", resp.StatusCode, resp.Header)
	}
	resp, gz := get("/verify.wasm", "gzip")
	if resp.Header.Get("Content-Type") != "application/wasm" || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("verify.wasm with gzip: %v", resp.Header)
	}
	resp, wasm := get("/verify.wasm", "identity")
	if resp.Header.Get("Content-Encoding") != "" || !bytes.HasPrefix(wasm, []byte("\x00asm")) || len(gz) >= len(wasm) {
		t.Fatalf("verify.wasm: %v, %d bytes", resp.Header, len(wasm))
	}
	if resp, _ := get("/collateral/intel/tdx/certification/v4/tcb?fmspc=00906ed50000", ""); resp.StatusCode != 404 {
		t.Fatalf("an offline service answered collateral: %d", resp.StatusCode)
	}
	testutil.Run(t, bin, "verifier", "page", "--out", dir)
	for _, f := range []string{"index.html", "style.css", "app.js", "wasm_exec.js", "verify.wasm"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		_, served := get("/"+f, "")
		if !bytes.Equal(data, served) {
			t.Errorf("%s: the static file differs from the served one", f)
		}
	}
	t.Logf("verify.wasm: %d bytes, %d gzipped (as served)", len(wasm), len(gz))
}
