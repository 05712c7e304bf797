package verifiersvc_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/internal/verifiersvc"
	"github.com/teesign/teesign/verify"
)

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %s", data)
	}
	return resp.StatusCode, m
}

func TestVerifyAndQuoteParse(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	q := strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt")))
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(k.Sign([]byte("hello")))
	body, _ := json.Marshal(map[string]any{"quote": q, "message": "hello", "signature": sig, "key_type": "ed25519", "any_workload": true})
	code, m := post(t, ts.URL+"/verify", string(body))
	if code != 200 || m["valid"] != true || m["any_workload"] != true {
		t.Fatalf("%d %v", code, m)
	}
	// Nothing pinned: invalid, the policy check naming the ways out.
	body, _ = json.Marshal(map[string]any{"quote": q, "message": "hello", "signature": sig, "key_type": "ed25519"})
	code, m = post(t, ts.URL+"/verify", string(body))
	if code != 200 || m["valid"] != false || !strings.Contains(checkReason(m, "policy"), "--any-workload") {
		t.Fatalf("unpinned: %d %v", code, m)
	}
	// Pinned by a policy in the request.
	body, _ = json.Marshal(map[string]any{"quote": q, "message": "hello", "signature": sig, "key_type": "ed25519",
		"policy": map[string]any{"tdx": map[string]any{"mr_td": []string{sampleMRTD}}}})
	if code, m = post(t, ts.URL+"/verify", string(body)); code != 200 || m["valid"] != true {
		t.Fatalf("pinned by policy: %d %v", code, m)
	}
	body, _ = json.Marshal(map[string]any{"quote": q, "message": "hellO", "signature": sig, "key_type": "ed25519", "any_workload": true})
	if code, m = post(t, ts.URL+"/verify", string(body)); code != 200 || m["valid"] != false {
		t.Fatalf("other message: %d %v", code, m)
	}
	code, m = post(t, ts.URL+"/dcap-tools/quote-parse", `{"quote":"`+q+`"}`)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	parsed := m["quote"].(map[string]any)
	for k, v := range map[string]string{
		"tcb_svn": "07010300000000000000000000000000", "tee_type": "00000081",
		"mr_td": "1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e",
		"rtmr3": "aff11dd6163203574cdf6841166e6d769e27897fc55ec63c87a8f4ae200781e7dc434318114fcabda19ce1af2ef0741a",
	} {
		if parsed[k] != v {
			t.Errorf("%s = %v, want %s", k, parsed[k], v)
		}
	}
	if parsed["version"] != float64(4) {
		t.Errorf("version = %v, want 4", parsed["version"])
	}
	if st, _ := m["status"].(map[string]any); st["result"] != float64(0) || st["exp_status"] != float64(0) {
		t.Errorf("status = %v, want result 0 (the sample's signatures verify)", m["status"])
	}
	// SecretVM's clients post a form; a tampered quote reports
	// INVALID_SIGNATURE (0xA004).
	resp, err := http.Post(ts.URL+"/dcap-tools/quote-parse", "application/x-www-form-urlencoded", strings.NewReader(url.Values{"quote": {q}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	var fm map[string]any
	json.NewDecoder(resp.Body).Decode(&fm)
	resp.Body.Close()
	if fq, _ := fm["quote"].(map[string]any); resp.StatusCode != 200 || fq["mr_td"] != parsed["mr_td"] {
		t.Fatalf("form post: %d %v", resp.StatusCode, fm)
	}
	bad := []byte(q)
	bad[0x30*2+300] ^= 1 // a hex digit in the TD body
	if bad[0x30*2+300] > 'f' || (bad[0x30*2+300] > '9' && bad[0x30*2+300] < 'a') {
		bad[0x30*2+300] = '0'
	}
	_, m = post(t, ts.URL+"/dcap-tools/quote-parse", `{"quote":"`+string(bad)+`"}`)
	if st, _ := m["status"].(map[string]any); st["result"] != float64(0xA004) {
		t.Errorf("tampered quote: status %v, want result 0xA004", m["status"])
	}
	for _, f := range []string{"tee_type", "tcb_svn", "mr_seam", "mr_signer_seam", "td_attributes", "xfam", "mr_td", "mr_config_id", "mr_owner", "mr_config", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "report_data"} {
		if _, ok := parsed[f].(string); !ok {
			t.Errorf("quote-parse lacks %s", f)
		}
	}
}

const sampleMRTD = "1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e"

// check returns the named check of a JSON result.
func check(m map[string]any, name string) map[string]any {
	checks, _ := m["checks"].([]any)
	for _, c := range checks {
		if c, ok := c.(map[string]any); ok && c["name"] == name {
			return c
		}
	}
	return nil
}

func checkReason(m map[string]any, name string) string {
	r, _ := check(m, name)["reason"].(string)
	return r
}

func checkStatus(m map[string]any, name string) string {
	s, _ := check(m, name)["status"].(string)
	return s
}

// The service decodes as strictly as the signing server: the bytes
// checked are the bytes sent.
func TestVerifyDecodesStrictly(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	q := strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt")))
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// A signature over the text "48656c6c6f".
	sig := base64.StdEncoding.EncodeToString(k.Sign([]byte("48656c6c6f")))
	req := func(enc string) string {
		b, _ := json.Marshal(map[string]any{"quote": q, "message": "48656c6c6f", "message_encoding": enc, "signature": sig, "key_type": "ed25519", "any_workload": true})
		return string(b)
	}
	if code, m := post(t, ts.URL+"/verify", req("utf8")); code != 200 || m["valid"] != true {
		t.Fatalf("utf8: %d %v", code, m)
	}
	// As hex it is the bytes "Hello", which that signature does not cover.
	if code, m := post(t, ts.URL+"/verify", req("hex")); code != 200 || m["valid"] != false || checkStatus(m, "signature") != "fail" {
		t.Fatalf("hex: %d %v", code, m)
	}
	helloSig := base64.StdEncoding.EncodeToString(k.Sign([]byte("Hello")))
	b, _ := json.Marshal(map[string]any{"quote": q, "message": "48656c6c6f", "message_encoding": "hex", "signature": helloSig, "key_type": "ed25519", "any_workload": true})
	if code, m := post(t, ts.URL+"/verify", string(b)); code != 200 || m["valid"] != true {
		t.Fatalf("hex of Hello signed as Hello: %d %v", code, m)
	}
	head := `{"quote":"` + q + `","signature":"` + sig + `","key_type":"ed25519","any_workload":true,`
	for name, body := range map[string]string{
		"unknown encoding":  req("bogus"),
		"encoding in caps":  req("HEX"),
		"duplicate key":     head + `"message":"evil","message":"48656c6c6f"}`,
		"case-folded key":   head + `"message":"evil","MESSAGE":"48656c6c6f"}`,
		"case-folded only":  head + `"Message":"48656c6c6f"}`,
		"invalid UTF-8":     head + "\"message\":\"48656c6c6f\xff\"}",
		"lone surrogate":    head + `"message":"48656c6c6f\ud800"}`,
		"trailing data":     head + `"message":"48656c6c6f"} {}`,
		"unknown field":     head + `"message":"48656c6c6f","extra":1}`,
		"wrong type":        head + `"message":5}`,
		"base64 with CRLF":  head + `"message":"SGVs\r\nbG8=","message_encoding":"base64"}`,
		"no signature":      `{"quote":"` + q + `","message":"m"}`,
		"policy field case": head + `"message":"m","policy":{"TDX":{}}}`,
	} {
		code, m := post(t, ts.URL+"/verify", body)
		if code != 400 || m["error"] == nil {
			t.Errorf("%s: %d %v, want a 400 with an error", name, code, m)
		}
	}
}

// A member name over MaxNameLength bytes, anywhere in the body, is refused
// before the JSON library decodes it: refusing it costs about the body's
// own size in memory, not the many copies the decoder's error path makes.
func TestLongNamesAreRefusedBeforeDecoding(t *testing.T) {
	h := &verifiersvc.Handler{Offline: true}
	ts := httptest.NewServer(h)
	defer ts.Close()
	name := func(n int) string { return strings.Repeat("\x7f", n) }
	for body, want := range map[string]string{
		`{"` + name(verifiersvc.MaxNameLength) + `":1}`:                               "unknown",
		`{"` + name(verifiersvc.MaxNameLength+1) + `":1}`:                             "a member name of 129 bytes at byte 1, over the 128-byte limit",
		`{"quote":"00", "policy":{"tdx":{"` + name(200) + `":1}}}`:                    "a member name of 200 bytes at byte 32,",
		`{"quote":"00","items":[{"message":"m","` + name(300) + `":"s"}]}`:            "a member name of 300 bytes",
		`{"quote":"00","message":"` + name(300) + `","signature":"` + name(300) + `"`: "unexpected EOF",
	} {
		code, m := post(t, ts.URL+"/verify", body)
		if msg, _ := m["error"].(string); code != 400 || !strings.Contains(msg, want) {
			t.Errorf("%.60q: %d %q, want 400 with %q", body, code, msg, want)
		}
	}
	body := `{"` + name(200<<10) + `":1}`
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 5
	for range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/verify", strings.NewReader(body)))
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "over the 128-byte limit") {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	runtime.ReadMemStats(&after)
	// Reading the body takes a few times its size (io.ReadAll's growth),
	// more under -race; the decoder's error path took tens of times.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 8*uint64(len(body)) {
		t.Errorf("refusing a %d-byte body allocated %d bytes", len(body), per)
	}
}

func TestBadRequests(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	for body, code := range map[string]int{
		`{"quote":"00"`:            400,
		`{"quote":"00","extra":1}`: 400,
		`{"quote":"00"} {}`:        400,
		`{"quote":"zz"}`:           400,
		`{"quote":"` + strings.Repeat("a", 300<<10) + `"}`: 413,
	} {
		got, m := post(t, ts.URL+"/dcap-tools/quote-parse", body)
		if got != code || m["error"] == nil {
			t.Errorf("%.40s: %d %v, want %d", body, got, m, code)
		}
	}
	resp, _ := http.Get(ts.URL + "/verify")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /verify: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if code, _ := post(t, ts.URL+"/nope", "{}"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
}

func FuzzHandler(f *testing.F) {
	q, _ := os.ReadFile(filepath.Join(testutil.SampleDir(), "quote.txt"))
	f.Add("/dcap-tools/quote-parse", `{"quote":"`+strings.TrimSpace(string(q))+`"}`)
	f.Add("/verify", `{"quote":"00","message":"m","signature":"AA==","key_type":"ed25519","policy":{"tdx":{"mr_td":["`+sampleMRTD+`"]}}}`)
	f.Add("/verify", `{"quote":"`+strings.TrimSpace(string(q))+`","message":"48656c6c6f","message_encoding":"hex","signature":"AA==","any_workload":true}`)
	h := &verifiersvc.Handler{Offline: true}
	f.Fuzz(func(t *testing.T, path, body string) {
		if path != "/verify" {
			path = "/dcap-tools/quote-parse"
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 413 {
			t.Fatalf("status %d", rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("response is not JSON: %q", rec.Body.String())
		}
	})
}

// A compose file in the request pins the workload against the service's
// registry (here the simulated one).
func TestVerifyWithCompose(t *testing.T) {
	dir := t.TempDir()
	compose := "services:\n  app:\n    image: alpine\n"
	p, err := simtee.NewTDX(dir, simtee.Options{Workload: [][]byte{[]byte(compose)}})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keys.Generate(keys.Ed25519)
	ev, err := p.Quote(context.Background(), k.Public().ReportData())
	if err != nil {
		t.Fatal(err)
	}
	roots, _ := os.ReadFile(filepath.Join(dir, simtee.TDXRootFile))
	certs, _ := verify.ParseCerts(roots)
	trust, err := verify.NewTrust(certs, verify.AMDCerts{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true, Trust: trust, Registry: simtee.Registry("")})
	defer ts.Close()
	sig := base64.StdEncoding.EncodeToString(k.Sign([]byte("m")))
	req := func(c string) string {
		b, _ := json.Marshal(map[string]any{"quote": string(quote.Encode(ev.Kind, ev.Raw)), "message": "m", "signature": sig, "key_type": "ed25519", "compose": c})
		return string(b)
	}
	code, m := post(t, ts.URL+"/verify", req(compose))
	if wl, _ := m["workload"].(map[string]any); code != 200 || m["valid"] != true || wl["status"] != "authentic_match" {
		t.Fatalf("same compose file: %d %v", code, m)
	}
	code, m = post(t, ts.URL+"/verify", req(compose+"#"))
	if wl, _ := m["workload"].(map[string]any); code != 200 || m["valid"] != false || wl["status"] != "authentic_mismatch" || checkStatus(m, "workload") != "fail" {
		t.Fatalf("another compose file: %d %v", code, m)
	}
}

func TestVerifyBatchEndpoint(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	q := strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt")))
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sig := func(m string) string { return base64.StdEncoding.EncodeToString(k.Sign([]byte(m))) }
	body, _ := json.Marshal(map[string]any{"quote": q, "key_type": "ed25519", "any_workload": true,
		"items": []map[string]string{{"message": "a", "signature": sig("a")}, {"message": "b", "signature": sig("c")}}})
	code, m := post(t, ts.URL+"/verify/batch", string(body))
	results, _ := m["results"].([]any)
	if code != 200 || len(results) != 2 || results[0].(map[string]any)["valid"] != true || results[1].(map[string]any)["valid"] != false {
		t.Fatalf("%d %v", code, m)
	}
	for name, b := range map[string]map[string]any{
		"no items":          {"quote": q, "any_workload": true},
		"message and items": {"quote": q, "message": "a", "signature": sig("a"), "items": []map[string]string{{"message": "a", "signature": sig("a")}}},
	} {
		body, _ := json.Marshal(b)
		if code, _ := post(t, ts.URL+"/verify/batch", string(body)); code != 400 {
			t.Errorf("%s: %d", name, code)
		}
	}
	body, _ = json.Marshal(map[string]any{"quote": q, "items": []map[string]string{{"message": "a", "signature": sig("a")}}})
	if code, _ := post(t, ts.URL+"/verify", string(body)); code != 400 {
		t.Errorf("items on /verify: %d", code)
	}
}

// POST /verify takes a bundle in place of quote, message and signature;
// the workload still comes from the request, and a malformed bundle or one
// mixed with loose fields is a 400 that says why.
func TestVerifyBundle(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	b := map[string]any{
		"media_type": "application/vnd.teesign.bundle.v1+json", "tee": "tdx", "key_type": "ed25519", "signature_format": "der",
		"public_key": string(testutil.SampleFile(t, "public_key.pem")),
		"quote":      strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt"))),
		"message":    base64.StdEncoding.EncodeToString([]byte("hello")),
		"signature":  base64.StdEncoding.EncodeToString(k.Sign([]byte("hello"))),
	}
	body := func(extra map[string]any) string {
		m := map[string]any{"bundle": b}
		for k, v := range extra {
			m[k] = v
		}
		out, _ := json.Marshal(m)
		return string(out)
	}
	if code, m := post(t, ts.URL+"/verify", body(map[string]any{"any_workload": true})); code != 200 || m["valid"] != true {
		t.Fatalf("bundle: %d %v", code, m)
	}
	if code, m := post(t, ts.URL+"/verify", body(map[string]any{"policy": map[string]any{"tdx": map[string]any{"mr_td": []string{sampleMRTD}}}})); code != 200 || m["valid"] != true {
		t.Fatalf("bundle pinned by policy: %d %v", code, m)
	}
	if code, m := post(t, ts.URL+"/verify", body(nil)); code != 200 || m["valid"] != false || checkStatus(m, "policy") != "fail" {
		t.Fatalf("bundle, nothing pinned: %d %v", code, m)
	}
	for name, c := range map[string]struct {
		body, want string
	}{
		"bundle and quote": {body(map[string]any{"quote": "00", "any_workload": true}), "either a bundle or quote"},
		"bundle to batch":  {"/batch" + body(nil), "send a bundle to POST /verify"},
		"key type mismatched": {func() string {
			b["key_type"] = "secp256k1"
			defer func() { b["key_type"] = "ed25519" }()
			return body(nil)
		}(), "key_type says secp256k1 but public_key is an ed25519 key"},
		"unknown member": {func() string { b["x"] = 1; defer delete(b, "x"); return body(nil) }(), "unknown object member"},
	} {
		url := ts.URL + "/verify"
		if strings.HasPrefix(c.body, "/batch") {
			url, c.body = url+"/batch", strings.TrimPrefix(c.body, "/batch")
		}
		code, m := post(t, url, c.body)
		if code != 400 || !strings.Contains(m["error"].(string), c.want) {
			t.Errorf("%s: %d %v, want 400 with %q", name, code, m, c.want)
		}
	}
}

// /collateral/ serves Intel's and AMD's documents as the service fetches
// them (issuer chains included), and nothing else: it is not an open
// proxy.
func TestCollateralProxy(t *testing.T) {
	var asked []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RequestURI())
		w.Header().Set("TCB-Info-Issuer-Chain", "chain")
		w.Header().Set("Set-Cookie", "x=y")
		w.Write([]byte(`{"tcbInfo":{}}`))
	}))
	defer upstream.Close()
	h := &verifiersvc.Handler{Collateral: &verify.CollateralSource{PCCSURL: upstream.URL, KDSURL: upstream.URL, Retries: -1}}
	ts := httptest.NewServer(h)
	defer ts.Close()
	get := func(path string) *http.Response {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for path, want := range map[string]string{
		"/collateral/intel/tdx/certification/v4/tcb?fmspc=00906ed50000":          "/tdx/certification/v4/tcb?fmspc=00906ed50000",
		"/collateral/intel/tdx/certification/v4/qe/identity":                     "/tdx/certification/v4/qe/identity",
		"/collateral/intel/sgx/certification/v4/pckcrl?ca=platform&encoding=der": "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
		"/collateral/intel/sgx/certification/v4/rootcacrl":                       "/sgx/certification/v4/rootcacrl",
		"/collateral/amd/vcek/v1/Milan/cert_chain":                               "/vcek/v1/Milan/cert_chain",
	} {
		asked = nil
		resp := get(path)
		if resp.StatusCode != 200 || len(asked) != 1 || asked[0] != want || resp.Header.Get("TCB-Info-Issuer-Chain") != "chain" || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: %d, upstream asked %v, headers %v", path, resp.StatusCode, asked, resp.Header)
		}
	}
	asked = nil
	for _, path := range []string{
		"/collateral/intel/tdx/certification/v4/tcb?fmspc=http://evil/",
		"/collateral/intel/sgx/certification/v3/pckcert",
		"/collateral/intel/../../admin",
		"/collateral/amd/vcek/v1/Milan/../../x",
		"/collateral/other/x",
	} {
		if resp := get(path); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
	if len(asked) != 0 {
		t.Errorf("refused paths reached the upstream: %v", asked)
	}
}

// With a verdict cache, requests about one quote check it once.
func TestVerifyReusesVerdicts(t *testing.T) {
	cache := verify.NewVerdictCache(0)
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true, Cache: cache})
	defer ts.Close()
	q := strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt")))
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for i, msg := range []string{"a", "b", "c"} {
		body, _ := json.Marshal(map[string]any{"quote": q, "message": msg, "signature": base64.StdEncoding.EncodeToString(k.Sign([]byte(msg))), "key_type": "ed25519", "any_workload": true})
		if code, m := post(t, ts.URL+"/verify", string(body)); code != 200 || m["valid"] != true {
			t.Fatalf("request %d: %d %v", i, code, m)
		}
	}
	if hits, misses := cache.Stats(); hits != 2 || misses != 1 {
		t.Fatalf("3 requests about one quote: %d hits, %d misses", hits, misses)
	}
}
