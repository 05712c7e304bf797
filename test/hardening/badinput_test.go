package hardening

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// secretMarker is in every payload the suite sends; the logs must never
// contain it.
const secretMarker = "SECRET-PAYLOAD-7f3a"

type badCase struct {
	name, method, path, body string
	status                   int
}

func badCases() []badCase {
	big := `{"payload":"` + secretMarker + strings.Repeat("A", 1<<20) + `"}`
	return []badCase{
		{"malformed JSON", "POST", "/sign", `{"payload": "` + secretMarker, 400},
		{"truncated JSON", "POST", "/sign", `{"key_type":"secp256k1","payload":"` + secretMarker + `"`, 400},
		{"not an object", "POST", "/sign", `["` + secretMarker + `"]`, 400},
		{"number payload", "POST", "/sign", `{"payload":12345}`, 400},
		{"object payload", "POST", "/sign", `{"payload":{"a":"` + secretMarker + `"}}`, 400},
		{"null key type", "POST", "/sign", `{"payload":"` + secretMarker + `","key_type":null}`, 400},
		{"unknown field", "POST", "/sign", `{"payload":"` + secretMarker + `","admin":true}`, 400},
		{"case-folded field", "POST", "/sign", `{"Payload":"` + secretMarker + `"}`, 400},
		{"duplicate key", "POST", "/sign", `{"payload":"a","payload":"` + secretMarker + `"}`, 400},
		{"trailing data", "POST", "/sign", `{"payload":"` + secretMarker + `"}{"payload":"x"}`, 400},
		{"trailing garbage", "POST", "/sign", `{"payload":"` + secretMarker + `"} x`, 400},
		{"invalid UTF-8", "POST", "/sign", "{\"payload\":\"" + secretMarker + "\xc3\x28\"}", 400},
		{"lone surrogate", "POST", "/sign", `{"payload":"` + secretMarker + `\udead"}`, 400},
		{"raw NUL byte", "POST", "/sign", "{\"payload\":\"" + secretMarker + "\x00\"}", 400},
		{"empty body", "POST", "/sign", ``, 400},
		{"missing payload", "POST", "/sign", `{"key_type":"ed25519"}`, 400},
		{"bad key type", "POST", "/sign", `{"payload":"` + secretMarker + `","key_type":"rsa"}`, 400},
		{"bad base64", "POST", "/sign", `{"payload":"` + secretMarker + `!","payload_encoding":"base64"}`, 400},
		{"bad hex", "POST", "/sign", `{"payload":"` + secretMarker + `","payload_encoding":"hex"}`, 400},
		{"bad encoding name", "POST", "/sign", `{"payload":"` + secretMarker + `","payload_encoding":"rot13"}`, 400},
		{"huge payload", "POST", "/sign", big, 413},
		{"empty batch", "POST", "/sign/batch", `{"payloads":[]}`, 400},
		{"batch of numbers", "POST", "/sign/batch", `{"payloads":[1,2]}`, 400},
		{"batch over 1000", "POST", "/sign/batch", `{"payloads":[` + strings.Repeat(`"a",`, 1000) + `"` + secretMarker + `"]}`, 400},
		{"GET /sign", "GET", "/sign", ``, 405},
		{"PUT /sign", "PUT", "/sign", `{"payload":"` + secretMarker + `"}`, 405},
		{"DELETE /healthz", "DELETE", "/healthz", ``, 405},
		{"unknown path", "GET", "/admin", ``, 404},
		{"traversal", "GET", "/public_key/../../etc/passwd", ``, 404},
		{"unknown key file", "GET", "/public_key/rsa", ``, 404},
		{"private key path", "GET", "/private_key/secp256k1", ``, 404},
	}
}

// NUL in the empty-payload case: a valid empty payload signs fine.
func TestBadInputSuite(t *testing.T) {
	d := startServe(t)
	base := "http://" + d.addr
	client := &http.Client{Timeout: 10 * time.Second}
	rssStart := d.rssKiB(t)
	for round := 0; round < 3; round++ {
		for _, c := range badCases() {
			req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m map[string]any
			if resp.StatusCode != c.status || json.Unmarshal(body, &m) != nil || m["error"] == nil {
				t.Errorf("%s: %d %q, want %d with a JSON error", c.name, resp.StatusCode, body, c.status)
			}
			if bytes.Contains(body, []byte(secretMarker)) && c.name != "bad key type" {
				t.Errorf("%s: the error echoes the payload: %s", c.name, body)
			}
			if resp.StatusCode == 405 && resp.Header.Get("Allow") == "" {
				t.Errorf("%s: 405 without Allow", c.name)
			}
			healthy(t, client, base)
		}
	}
	// Valid edge cases still sign.
	for _, body := range []string{`{"payload":""}`, `{"payload":"` + strings.Repeat("é", 1000) + `"}`, `{"payload":"AA==","payload_encoding":"base64"}`} {
		resp, err := client.Post(base+"/sign", "text/plain", strings.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("valid %.30s: %v %v", body, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	rssEnd := d.rssKiB(t)
	t.Logf("bad-input suite: %d cases × 3 rounds; RSS %d KiB → %d KiB", len(badCases()), rssStart, rssEnd)
	if rssEnd > 96<<10 {
		t.Errorf("RSS grew to %d KiB", rssEnd)
	}
	checkLogs(t, d)
}

func healthy(t *testing.T, client *http.Client, base string) {
	t.Helper()
	resp, err := client.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz failed: %v", err)
	}
	resp.Body.Close()
}

// checkLogs: no payload, no private key in anything the daemon printed.
func checkLogs(t *testing.T, d *daemon) {
	t.Helper()
	logs := d.log.String()
	for _, bad := range []string{secretMarker, "PRIVATE KEY", "My Secret Message"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the daemon's logs contain %q", bad)
		}
	}
}

func TestHugeHeadersAndSlowClients(t *testing.T) {
	d := startServe(t)
	base := "http://" + d.addr
	client := &http.Client{Timeout: 10 * time.Second}

	// Huge headers: 431.
	req, _ := http.NewRequest("POST", base+"/sign", strings.NewReader(`{"payload":"x"}`))
	req.Header.Set("X-Junk", strings.Repeat("a", 64<<10))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge headers: %d, want 431", resp.StatusCode)
	}

	// Many idle connections, while /healthz keeps answering.
	var idle []net.Conn
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}
	healthy(t, client, base)

	// Slowloris: headers one byte at a time; the server must close the
	// connection once its header timeout (5 s) passes.
	slow := func(payloadAfterHeaders bool) (closedAfter time.Duration) {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := "POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
		if payloadAfterHeaders {
			c.Write([]byte(msg + "\r\n{"))
			msg = strings.Repeat(" ", 200)
		}
		start := time.Now()
		for i := 0; i < len(msg); i++ {
			if _, err := c.Write([]byte{msg[i]}); err != nil {
				return time.Since(start)
			}
			healthy(t, client, base)
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 512)
			if n, err := c.Read(buf); err == io.EOF || (n > 0 && bytes.Contains(buf[:n], []byte("408"))) {
				return time.Since(start)
			}
		}
		return -1
	}
	var wg sync.WaitGroup
	results := make([]time.Duration, 2)
	for i, body := range []bool{false, true} {
		wg.Add(1)
		go func(i int, body bool) { defer wg.Done(); results[i] = slow(body) }(i, body)
	}
	wg.Wait()
	if results[0] < 0 || results[0] > 8*time.Second {
		t.Errorf("slow headers: connection not closed within the 5 s header timeout (%v)", results[0])
	}
	if results[1] < 0 || results[1] > 20*time.Second {
		t.Errorf("slow body: connection not closed within the 15 s request timeout (%v)", results[1])
	}
	t.Logf("slow headers closed after %v, slow body after %v; 300 idle connections held", results[0].Round(time.Millisecond), results[1].Round(time.Millisecond))
	for _, c := range idle {
		c.Close()
	}
	healthy(t, client, base)
	checkLogs(t, d)
	_ = fmt.Sprint
	_ = bufio.NewReader
}
