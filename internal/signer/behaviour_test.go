package signer_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/signer"
)

// The held-bytes cap must cover the bundles a request asks for: a cap one
// byte under what the reply's bundles take refuses the request, for a
// single /sign and for a batch, whatever the payload's size.
func TestBundleReservationCoversTheReply(t *testing.T) {
	bundleSize := func(body string) int {
		ts, _ := newServerWith(t, "sim-tdx", nil, "127.0.0.0/8")
		code, data := postRaw(t, ts.URL+pathOf(body), strings.TrimPrefix(body, "/batch"))
		if code != 200 {
			t.Fatalf("%d %s", code, data)
		}
		var reply struct{ Bundle json.RawMessage }
		json.Unmarshal(data, &reply)
		return len(reply.Bundle)
	}
	for _, body := range []string{
		`{"key_type":"ed25519","payload":"x","bundle":true}`,
		`{"key_type":"ed25519","payload":"` + strings.Repeat("p", 3000) + `","bundle":true}`,
		`/batch{"key_type":"ed25519","payloads":["a","` + strings.Repeat("q", 1000) + `","c"],"bundle":true}`,
	} {
		need := bundleSize(body)
		ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.HeldBytes = int64(need - 1) }, "127.0.0.0/8")
		if code, data := postRaw(t, ts.URL+pathOf(body), strings.TrimPrefix(body, "/batch")); code != 400 || !strings.Contains(string(data), "ask fewer payloads") {
			t.Errorf("bundles of %d bytes under a cap of %d: %d %s", need, need-1, code, data)
		}
	}
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
