package signer_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/signer"
)

// The held-bytes cap must cover the bundles a request asks for: a cap one
// byte under what the reply's bundles take refuses the request, for a
// single /sign and for a batch, whatever the payload's size.
func TestBundleReservationCoversTheReply(t *testing.T) {
	for _, body := range []string{
		`{"key_type":"ed25519","payload":"x","bundle":true}`,
		`{"key_type":"ed25519","payload":"` + strings.Repeat("p", 3000) + `","bundle":true}`,
		`/batch{"key_type":"ed25519","payloads":["a","` + strings.Repeat("q", 1000) + `","c"],"bundle":true}`,
	} {
		need := bundleSize(t, body)
		ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.HeldBytes = int64(need - 1) }, "127.0.0.0/8")
		if code, data := postRaw(t, ts.URL+pathOf(body), strings.TrimPrefix(body, "/batch")); code != 400 || !strings.Contains(string(data), "ask fewer payloads") {
			t.Errorf("bundles of %d bytes under a cap of %d: %d %s", need, need-1, code, data)
		}
	}
}

// bundleSize is the size of the bundles a server with default limits
// answers to body ("/batch" in front: a /sign/batch request).
func bundleSize(t *testing.T, body string) int {
	t.Helper()
	ts, _ := newServerWith(t, "sim-tdx", nil, "127.0.0.0/8")
	code, data := postRaw(t, ts.URL+pathOf(body), strings.TrimPrefix(body, "/batch"))
	if code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	var reply struct{ Bundle json.RawMessage }
	if err := json.Unmarshal(data, &reply); err != nil || reply.Bundle == nil {
		t.Fatalf("no bundle in %s: %v", data, err)
	}
	return len(reply.Bundle)
}

func pathOf(body string) string {
	if strings.HasPrefix(body, "/batch") {
		return "/sign/batch"
	}
	return "/sign"
}

// An unknown field is named without its JSON quotes.
func TestUnknownFieldIsNamed(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	code, data := postRaw(t, ts.URL+"/sign", `{"payload":"x","colour":"red"}`)
	var m map[string]string
	json.Unmarshal(data, &m)
	if code != 400 || m["error"] != `unknown field "colour"` {
		t.Fatalf("%d %s", code, data)
	}
}

// Signatures are counted in /metrics under their own key type.
func TestMetricsCountByKeyType(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	for _, kt := range []keys.Alg{keys.Ed25519, keys.Ed25519, keys.Secp256k1} {
		if code, data := postRaw(t, ts.URL+"/sign", `{"key_type":"`+string(kt)+`","payload":"m"}`); code != 200 {
			t.Fatalf("%d %s", code, data)
		}
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`teesign_signatures_total{key_type="ed25519"} 2`, `teesign_signatures_total{key_type="secp256k1"} 1`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The held-bytes cap may equal the body limit, not be below it.
func TestHeldBytesAtLeastTheBodyLimit(t *testing.T) {
	ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.HeldBytes = c.BodyLimit }, "127.0.0.0/8")
	if code, _ := postRaw(t, ts.URL+"/sign", `{"payload":"x"}`); code != 200 {
		t.Fatalf("cap equal to the body limit: %d", code)
	}
	_, err := signer.New(signer.Config{BodyLimit: 4096, HeldBytes: 4095})
	if err == nil || !strings.Contains(err.Error(), "fewer than the body limit") {
		t.Fatalf("cap under the body limit: %v", err)
	}
}

// GET endpoints answer HEAD too and say so in Allow; POST endpoints allow
// POST alone.
func TestMethodsAndAllow(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	for _, c := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"HEAD", "/healthz", 200, ""},
		{"HEAD", "/public_key/ed25519", 200, ""},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "/attestation/ed25519", 405, "GET, HEAD"},
		{"GET", "/sign", 405, "POST"},
		{"HEAD", "/sign/batch", 405, "POST"},
	} {
		req, _ := http.NewRequest(c.method, ts.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.code, c.allow)
		}
	}
}

// The estimate of a request's bundles is not inflated: a cap that holds
// the request and its bundles (with the estimate's small allowance for
// names and signature) accepts it, for a single /sign and for a batch.
func TestBundleEstimateFitsWhatFits(t *testing.T) {
	for _, body := range []string{
		`{"key_type":"ed25519","payload":"` + strings.Repeat("p", 3000) + `","bundle":true}`,
		`/batch{"key_type":"ed25519","payloads":["a","` + strings.Repeat("q", 3000) + `","c"],"bundle":true}`,
	} {
		size := bundleSize(t, body)
		fits := int64(size + len(body) + 3*256)
		ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.HeldBytes = fits }, "127.0.0.0/8")
		if code, data := postRaw(t, ts.URL+pathOf(body), strings.TrimPrefix(body, "/batch")); code != 200 {
			t.Errorf("bundles of %d bytes under a cap of %d: %d %s", size, fits, code, data)
		}
	}
}

// A batch holds 1 to MaxBatch payloads: exactly MaxBatch is signed, one
// more is refused.
func TestBatchOfExactlyMaxBatch(t *testing.T) {
	ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.BodyLimit = 64 << 10 }, "127.0.0.0/8")
	body := func(n int) string {
		return `{"key_type":"ed25519","payloads":["a"` + strings.Repeat(`,"a"`, n-1) + `]}`
	}
	code, data := postRaw(t, ts.URL+"/sign/batch", body(signer.MaxBatch))
	var reply struct{ Signatures []string }
	if code != 200 || json.Unmarshal(data, &reply) != nil || len(reply.Signatures) != signer.MaxBatch {
		t.Fatalf("%d payloads: %d, %d signatures", signer.MaxBatch, code, len(reply.Signatures))
	}
	if code, data := postRaw(t, ts.URL+"/sign/batch", body(signer.MaxBatch+1)); code != 400 || !strings.Contains(string(data), "must hold 1 to") {
		t.Fatalf("%d payloads: %d %s", signer.MaxBatch+1, code, data)
	}
}

// Errors name the field at fault: an unknown or duplicate name, decoded,
// up to 32 bytes whole and longer ones cut with an ellipsis.
func TestErrorsNameTheField(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	n32, n33 := strings.Repeat("n", 32), strings.Repeat("n", 33)
	for body, want := range map[string]string{
		`{"payload":"x","":1}`:                      `unknown field ""`,
		`{"payload":"x","\u0063olour":1}`:           `unknown field "colour"`,
		`{"payload":"a","payload":"b"}`:             `duplicate field "payload"`,
		`{"payload":"x","` + n32 + `":1}`:           `unknown field "` + n32 + `"`,
		`{"payload":"x","` + n33 + `":1}`:           `unknown field "` + n32 + `"…`,
		`{"payload":"x","` + n32 + `\u0063":1}`:     `unknown field "` + n32 + `"…`,
		`{"payload":"x","` + n33 + `\u0063":1}`:     `unknown field "` + n32 + `"…`,
		`{"payload":"x","` + n32[1:] + `\u0063":1}`: `unknown field "` + n32[1:] + `c"`,
		`{"payload":"x","` + n32[1:] + `é":1}`:      `unknown field "` + n32[1:] + `"…`,
		`{"payload":"x","` + n32 + `é":1}`:          `unknown field "` + n32 + `"…`,
		`{"payload":"x","` + n32[2:] + `é":1}`:      `unknown field "` + n32[2:] + `\u00e9"`,
		`{"payload":"x","a/b":1,"a/b":2}`:           `unknown field "a/b"`,
		`{"key_type":"x","key_type":"y"}`:           `duplicate field "key_type"`,
		`{"payload":"x","bundle":1}`:                `field "bundle" must be true or false`,
		`{"payload":"x","payload_encoding":1}`:      "",
	} {
		code, data := postRaw(t, ts.URL+"/sign", body)
		var m map[string]string
		json.Unmarshal(data, &m)
		if code != 400 || (want != "" && m["error"] != want) {
			t.Errorf("%s: %d %q, want %q", body, code, m["error"], want)
		}
	}
}

// eth_raw takes the digest as 64 hex digits, with a 0x or 0X prefix or
// none.
func TestEthRawDigestPrefixes(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	digest := strings.Repeat("ab", 32)
	for payload, want := range map[string]int{
		digest: 200, "0x" + digest: 200, "0X" + digest: 200,
		"0x" + digest[2:]: 400, "0x": 400, "x0" + digest: 400, "0x0x" + digest: 400,
	} {
		if code, data := postRaw(t, ts.URL+"/sign", `{"key_type":"secp256k1","format":"eth_raw","payload":"`+payload+`"}`); code != want {
			t.Errorf("eth_raw payload %q: %d %s, want %d", payload, code, data, want)
		}
	}
}

// A body limit of zero means the default (1 MiB); a body of exactly the
// limit is read, one byte more is a 413.
func TestBodyLimitBoundaries(t *testing.T) {
	ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.BodyLimit = 0 }, "127.0.0.0/8")
	big := `{"payload":"` + strings.Repeat("x", 100<<10) + `"}`
	if code, data := postRaw(t, ts.URL+"/sign", big); code != 200 {
		t.Fatalf("100 KiB under the default limit: %d %s", code, data)
	}
	ts, _ = newServer(t, "127.0.0.0/8") // a 4096-byte limit
	body := `{"payload":"x"}`
	exact := body + strings.Repeat(" ", 4096-len(body))
	if code, data := postRaw(t, ts.URL+"/sign", exact); code != 200 {
		t.Fatalf("a body of exactly the limit: %d %s", code, data)
	}
	if code, _ := postRaw(t, ts.URL+"/sign", exact+" "); code != 413 {
		t.Fatalf("a body one byte over the limit: %d", code)
	}
}

// A request without a Content-Length (chunked) is read up to the limit
// and signed.
func TestChunkedRequestIsSigned(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.0/8")
	req, _ := http.NewRequest("POST", ts.URL+"/sign", io.MultiReader(strings.NewReader(`{"payload":`), strings.NewReader(`"chunked"}`)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(data), `"signature"`) {
		t.Fatalf("chunked request: %d %s", resp.StatusCode, data)
	}
}

// /attestation carries the SEV-SNP certificate table, and only there.
func TestAttestationCertTableOnlyForSEVSNP(t *testing.T) {
	for tee, want := range map[string]bool{"sim-tdx": false, "sim-sev-snp": true} {
		ts, _ := newServerWith(t, tee, nil, "127.0.0.0/8")
		for _, alg := range keys.Algs() {
			resp, err := http.Get(ts.URL + "/attestation/" + string(alg))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			table, ok := m["cert_table"].(string)
			if ok != want || (want && table == "") {
				t.Errorf("%s %s: cert_table %q present %v, want present %v", tee, alg, table, ok, want)
			}
		}
	}
}

// A disallowed source's 403 waits until the client has sent its request
// (a reply before it makes some clients drop the connection unread), and
// ends with an orderly close, not a reset that could lose it.
func TestDenialWaitsForTheRequestAndClosesCleanly(t *testing.T) {
	ts, _ := newServer(t, "127.0.0.1/32")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(60 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("before the request was sent: %d bytes, %v; want nothing yet", n, err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"payload\":\"x\"}")); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(c) // to EOF: an orderly close
	if err != nil {
		t.Fatalf("after %q: %v", all, err)
	}
	if !strings.HasPrefix(string(all), "HTTP/1.1 403 ") {
		t.Fatalf("reply %q", all)
	}
}

// Large bodies (over 256 KiB, read one at a time into one buffer) and
// small ones (pooled buffers, 60 KiB here) sent at once each get the signature of
// their own payload.
func TestConcurrentLargeAndSmallRequestsKeepTheirPayloads(t *testing.T) {
	ts, ks := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.BodyLimit = 1 << 20; c.HeldBytes = 8 << 20 }, "127.0.0.0/8")
	// Its own transport, closed at the end: a connection it dialled but
	// never used would hold the server's shutdown for net/http's 5 s.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				n := 60 << 10
				if (g+i)%2 == 0 {
					n = 300 << 10
				}
				payload := strings.Repeat(string(rune('a'+g)), n) + fmt.Sprint(i)
				resp, err := client.Post(ts.URL+"/sign", "application/json", strings.NewReader(`{"key_type":"ed25519","payload":"`+payload+`"}`))
				if err != nil {
					errs <- err
					return
				}
				var reply struct{ Signature string }
				err = json.NewDecoder(resp.Body).Decode(&reply)
				resp.Body.Close()
				sig, _ := base64.StdEncoding.DecodeString(reply.Signature)
				if err != nil || resp.StatusCode != 200 || ks[keys.Ed25519].Public().Verify([]byte(payload), sig) != nil {
					errs <- fmt.Errorf("goroutine %d request %d (%d bytes): status %d, the signature is not of its payload (%v)", g, i, n, resp.StatusCode, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A request whose body arrives in two parts keeps its bytes while another
// request of the same size class is read and answered in between: small
// bodies (pooled buffers) and large ones (one shared buffer, one at a
// time) alike.
func TestInterleavedBodiesKeepTheirBytes(t *testing.T) {
	ts, ks := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.BodyLimit = 1 << 20; c.HeldBytes = 8 << 20 }, "127.0.0.0/8")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, n := range []int{1 << 10, 300 << 10} {
		first := `{"key_type":"ed25519","payload":"` + strings.Repeat("f", n) + `"}`
		// One request of this size first, so that a buffer that fits it
		// is there to be reused.
		resp, err := client.Post(ts.URL+"/sign", "application/json", strings.NewReader(first))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		half := len(first) / 2
		fmt.Fprintf(c, "POST /sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(first), first[:half])
		time.Sleep(50 * time.Millisecond) // the server is reading the first body
		second := make(chan error, 1)
		go func() {
			resp, err := client.Post(ts.URL+"/sign", "application/json", strings.NewReader(`{"key_type":"ed25519","payload":"`+strings.Repeat("s", n)+`"}`))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			second <- err
		}()
		// A small second body is answered now; a large one waits for the
		// first to be read.
		var secondErr error
		secondDone := false
		select {
		case secondErr = <-second:
			secondDone = true
		case <-time.After(300 * time.Millisecond):
		}
		c.Write([]byte(first[half:]))
		resp, err = http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		var reply struct{ Signature string }
		json.NewDecoder(resp.Body).Decode(&reply)
		c.Close()
		sig, _ := base64.StdEncoding.DecodeString(reply.Signature)
		if resp.StatusCode != 200 || ks[keys.Ed25519].Public().Verify([]byte(strings.Repeat("f", n)), sig) != nil {
			t.Errorf("%d-byte body in two parts: status %d, not the signature of its payload", n, resp.StatusCode)
		}
		if !secondDone {
			secondErr = <-second
		}
		if secondErr != nil {
			t.Fatal(secondErr)
		}
	}
}

// Request bytes over the held-bytes cap wait for bytes to be freed: a
// request behind two half-sent bodies that take the whole cap is answered
// once one of them completes, and is answered 503 with Retry-After when
// none does within the wait (1 s here; 0 means 5 s).
func TestHeldBytesWaitThenBusy(t *testing.T) {
	ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.HeldBytes, c.HeldBytesWait = 8192, time.Second }, "127.0.0.0/8") // body limit 4096
	addr := strings.TrimPrefix(ts.URL, "http://")
	body := `{"payload":"` + strings.Repeat("h", 4096-15) + `"}`
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	hold := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:100])
		return c
	}
	a, _ := hold(), hold()
	time.Sleep(100 * time.Millisecond) // both have reserved their 4096 bytes
	type answer struct {
		code  int
		retry string
		took  time.Duration
	}
	third := func() chan answer {
		ch := make(chan answer, 1)
		go func() {
			t0 := time.Now()
			resp, err := http.Post(ts.URL+"/sign", "application/json", strings.NewReader(`{"payload":"third"}`))
			if err != nil {
				ch <- answer{code: -1}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(t0)}
		}()
		return ch
	}
	waiting := third()
	time.Sleep(300 * time.Millisecond)
	a.Write([]byte(body[100:])) // the first body completes and frees its bytes
	if got := <-waiting; got.code != 200 {
		t.Fatalf("a request waiting for bytes that are freed: %+v", got)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(a), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the completed body: %v %v", resp, err)
	}
	hold() // the cap is full again
	time.Sleep(100 * time.Millisecond)
	if got := <-third(); got.code != 503 || got.retry != "1" || got.took < 900*time.Millisecond {
		t.Fatalf("a request whose bytes are never freed: %+v", got)
	}
}
