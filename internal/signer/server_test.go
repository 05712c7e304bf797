package signer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/identity"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/signer"
	"github.com/teesign/teesign/internal/simtee"
)

// testServer is a signing server on its real transport, on loopback.
type testServer struct {
	URL     string
	Handler http.Handler
	// Root is the simulated TEE's root certificate file.
	Root string
}

func newServer(t testing.TB, allow ...string) (*testServer, map[keys.Alg]*keys.PrivateKey) {
	t.Helper()
	return newServerRefresh(t, nil, allow...)
}

func newServerRefresh(t testing.TB, refresh func() []netip.Prefix, allow ...string) (*testServer, map[keys.Alg]*keys.PrivateKey) {
	t.Helper()
	return newServerWith(t, "sim-tdx", func(c *signer.Config) { c.Refresh = refresh }, allow...)
}

// newServerWith serves keys attested by a simulated TEE (sim-tdx or
// sim-sev-snp), with its root in the result's Root; edit changes the
// configuration.
func newServerWith(t testing.TB, tee string, edit func(*signer.Config), allow ...string) (*testServer, map[keys.Alg]*keys.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	var prov interface {
		Quote(context.Context, [64]byte) (*quote.Evidence, error)
	}
	root := filepath.Join(dir, simtee.TDXRootFile)
	var err error
	if tee == "sim-tdx" {
		prov, err = simtee.NewTDX(dir, simtee.Options{})
	} else {
		prov, err = simtee.NewSNP(dir, simtee.Options{})
		root = filepath.Join(dir, simtee.SNPRootFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	ids := map[keys.Alg]*identity.Identity{}
	ks := map[keys.Alg]*keys.PrivateKey{}
	for _, alg := range keys.Algs() {
		k, err := keys.Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := prov.Quote(context.Background(), k.Public().ReportData())
		if err != nil {
			t.Fatal(err)
		}
		ks[alg] = k
		ids[alg] = identity.New(k, ev)
	}
	var prefixes []netip.Prefix
	for _, a := range allow {
		prefixes = append(prefixes, netip.MustParsePrefix(a))
	}
	cfg := signer.Config{Identities: ids, TEE: tee, Allow: prefixes, BodyLimit: 4096}
	if edit != nil {
		edit(&cfg)
	}
	h, err := signer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, ln, 0) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{URL: "http://" + ln.Addr().String(), Handler: h, Root: root}, ks
}

func do(t *testing.T, method, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, url, data)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func TestSignBothKeyTypes(t *testing.T) {
	ts, ks := newServer(t, "127.0.0.0/8")
	for _, alg := range keys.Algs() {
		code, _, m := do(t, "POST", ts.URL+"/sign", `{"key_type": "`+string(alg)+`", "payload": "My Secret Message" }`)
		if code != 200 || m["key_type"] != string(alg) {
			t.Fatalf("%s: %d %v", alg, code, m)
		}
		sig, err := base64.StdEncoding.DecodeString(m["signature"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if err := ks[alg].Public().Verify([]byte("My Secret Message"), sig); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
	}
	// Batch keeps order.
	code, _, m := do(t, "POST", ts.URL+"/sign/batch", `{"key_type":"ed25519","payloads":["a","b","c"]}`)
	if code != 200 {
		t.Fatalf("batch: %d %v", code, m)
	}
	sigs := m["signatures"].([]any)
	for i, p := range []string{"a", "b", "c"} {
		sig, _ := base64.StdEncoding.DecodeString(sigs[i].(string))
		if err := ks[keys.Ed25519].Public().Verify([]byte(p), sig); err != nil {
			t.Fatalf("batch signature %d: %v", i, err)
		}
	}
}

func TestErrorCases(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/sign", `{"payload":`, 400, "invalid JSON"},
		{"POST", "/sign", `{"key_type":"secp256k1"}`, 400, "missing field"},
		{"POST", "/sign", `{"key_type":"rsa","payload":"x"}`, 400, "invalid key type"},
		{"POST", "/sign", `{"payload":"x","payload_encoding":"base64"}`, 400, "base64"},
		{"POST", "/sign", `{"payload":"` + strings.Repeat("a", 5000) + `"}`, 413, "limit"},
		{"GET", "/sign", ``, 405, "not allowed"},
		{"POST", "/public_key/ed25519", ``, 405, "not allowed"},
		{"GET", "/nope", ``, 404, "not found"},
		{"GET", "/public_key/rsa", ``, 404, "unknown key type"},
	}
	for _, c := range cases {
		code, h, m := do(t, c.method, ts.URL+c.path, c.body)
		if code != c.code || !strings.Contains(m["error"].(string), c.want) {
			t.Errorf("%s %s %.30s: %d %v, want %d %q", c.method, c.path, c.body, code, m, c.code, c.want)
		}
		if code == 405 && h.Get("Allow") == "" {
			t.Errorf("405 without Allow")
		}
	}
	code, _, m := do(t, "GET", ts.URL+"/attestation/ed25519", "")
	if code != 200 || m["tee"] != "sim-tdx" || !strings.Contains(m["public_key"].(string), "PUBLIC KEY") || len(m["report_data"].(string)) != 128 {
		t.Fatalf("attestation: %d %v", code, m)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`teesign_request_errors_total{code="400"} 4`)) {
		t.Fatalf("metrics do not count the 400s:\n%s", body)
	}
}

func TestDisallowedSourceGets403(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.1/32")
	// Dial from 127.0.0.2, outside the allowed 127.0.0.1/32.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		return d.DialContext(ctx, network, addr)
	}}}
	resp, err := client.Post(ts.URL+"/sign", "application/json", strings.NewReader(`{"payload":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	code, _, _ := do(t, "POST", ts.URL+"/sign", `{"payload":"x"}`)
	if code != 200 {
		t.Fatalf("allowed source got %d", code)
	}
}

func TestEthereumFormats(t *testing.T) {
	ts, ks := newServer(t, "127.0.0.0/8")
	k := ks[keys.Secp256k1]
	addr, _ := k.Public().EthAddress()
	for i := 0; i < 20; i++ {
		payload := fmt.Sprintf("payload %d %x", i, i*7919)
		code, _, m := do(t, "POST", ts.URL+"/sign", `{"payload":"`+payload+`","format":"eth_personal_sign"}`)
		if code != 200 {
			t.Fatalf("%d %v", code, m)
		}
		sig, err := hex.DecodeString(strings.TrimPrefix(m["signature"].(string), "0x"))
		if err != nil || !strings.HasPrefix(m["signature"].(string), "0x") || len(sig) != 65 {
			t.Fatalf("signature %v", m["signature"])
		}
		pub, err := keys.RecoverEth(keys.EthPersonalHash([]byte(payload)), sig)
		if err != nil || !pub.Equal(k.Public()) {
			t.Fatalf("recover: %v", err)
		}
	}
	digest := strings.Repeat("ab", 32)
	code, _, m := do(t, "POST", ts.URL+"/sign", `{"payload":"0x`+digest+`","format":"eth_raw"}`)
	if code != 200 {
		t.Fatalf("eth_raw: %d %v", code, m)
	}
	sig, _ := hex.DecodeString(strings.TrimPrefix(m["signature"].(string), "0x"))
	d, _ := hex.DecodeString(digest)
	if pub, err := keys.RecoverEth(d, sig); err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("eth_raw recover: %v", err)
	}
	for body, want := range map[string]string{
		`{"payload":"x","format":"eth_personal_sign","key_type":"ed25519"}`: "needs key_type",
		`{"payload":"abcd","format":"eth_raw"}`:                             "32-byte digest",
		`{"payload":"x","format":"pgp"}`:                                    "invalid format",
	} {
		code, _, m := do(t, "POST", ts.URL+"/sign", body)
		if code != 400 || !strings.Contains(m["error"].(string), want) {
			t.Errorf("%s: %d %v", body, code, m)
		}
	}
	code, _, m = do(t, "GET", ts.URL+"/attestation/secp256k1", "")
	if code != 200 || m["ethereum_address"] != addr {
		t.Fatalf("attestation address %v, want %s", m["ethereum_address"], addr)
	}
}

// A disallowed source gets the fixed 403 at accept, before any byte of
// its request is read: requests that would be a 413 or a 400 get 403.
func TestDisallowedSourceIsRefusedUnread(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.1/32")
	addr := strings.TrimPrefix(ts.URL, "http://")
	for name, req := range map[string]string{
		"over the body limit": "POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{\"payload\":\"",
		"malformed":           "this is not HTTP at all\r\n\r\n",
		"never sends":         "",
	} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if req != "" {
			c.Write([]byte(req))
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 403 || !strings.Contains(string(body), "forbidden") {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
}

// Error messages repeat at most a short, escaped prefix of the input.
func TestErrorsEchoLittle(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	name := strings.Repeat("\x7f", 3000)
	for _, body := range []string{`{"` + name + `":"x"}`, `{"payload":"x","key_type":"` + strings.Repeat("k", 3000) + `"}`, `{"payload":"x","payload_encoding":"` + name + `"}`} {
		code, _, m := do(t, "POST", ts.URL+"/sign", body)
		msg, _ := m["error"].(string)
		if code != 400 || len(msg) > 300 { // bounded, whatever the input's size
			t.Fatalf("%d, a %d-byte error", code, len(msg))
		}
	}
}

func TestExposureChecks(t *testing.T) {
	for listen, ok := range map[string]bool{"172.17.0.1:49153": true, "127.0.0.1:49153": true, "[::1]:49153": true, "0.0.0.0:49153": false, "[::]:49153": false, "8.8.8.8:49153": false} {
		if err := signer.CheckExposure(listen, nil); (err == nil) != ok {
			t.Errorf("--listen %s: %v", listen, err)
		}
	}
	for allow, ok := range map[string]bool{"10.1.0.0/16": true, "172.18.0.0/16": true, "0.0.0.0/0": false, "::/0": false, "8.0.0.0/8": false, "10.0.0.0/7": false} {
		if err := signer.CheckExposure("127.0.0.1:1", []netip.Prefix{netip.MustParsePrefix(allow)}); (err == nil) != ok {
			t.Errorf("--allow %s: %v", allow, err)
		}
	}
}

// A large /sign/batch reply carries Content-Length, not chunked coding.
func TestBatchReplyHasContentLength(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	body := `{"payloads":[` + strings.Repeat(`"abc",`, 99) + `"abc"]}`
	resp, err := http.Post(ts.URL+"/sign/batch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength <= 4096 || len(resp.TransferEncoding) != 0 {
		t.Fatalf("%d, Content-Length %d, Transfer-Encoding %v", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
}

// The allow-list follows Docker: a source not yet allowed makes the
// server re-read the allowed networks (compose creates its bridge after
// teesign starts), at most once a second.
func TestAllowListFollowsDocker(t *testing.T) {
	var calls atomic.Int32
	bridges := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	var mu sync.Mutex
	refresh := func() []netip.Prefix {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return append([]netip.Prefix(nil), bridges...)
	}
	ts, _ := newServerRefresh(t, refresh, "127.0.0.1/32")
	from := func(ip string) int {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			return d.DialContext(ctx, network, addr)
		}}}
		resp, err := client.Post(ts.URL+"/sign", "application/json", strings.NewReader(`{"payload":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A flood from a source on no bridge: refused, and the networks are
	// re-read once, not once a connection.
	for i := 0; i < 20; i++ {
		if code := from("127.0.0.3"); code != 403 {
			t.Fatalf("unknown source: %d", code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("re-read %d times for 20 refused connections within a second", n)
	}
	// Compose creates its bridge: the next connection from it, a second
	// later, is allowed.
	mu.Lock()
	bridges = append(bridges, netip.MustParsePrefix("127.0.0.2/32"))
	mu.Unlock()
	time.Sleep(1100 * time.Millisecond)
	if code := from("127.0.0.2"); code != 200 {
		t.Fatalf("source on the new bridge: %d", code)
	}
}
