package signer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/signer"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/verify"
)

// postRaw posts body and returns the status and the raw reply.
func postRaw(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// verifyBundle decodes one bundle, checks it against the JSON Schema and
// verifies it with the simulated root.
func verifyBundle(t *testing.T, raw json.RawMessage, root string) (*bundle.Bundle, *verify.Result) {
	t.Helper()
	testutil.CheckBundleSchema(t, raw)
	b, err := bundle.Decode(raw)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, raw)
	}
	pem, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := verify.ParseCerts(pem)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.VerifyBundle(context.Background(), b, verify.Options{TrustedCerts: certs, Offline: true, AnyWorkload: true})
	if err != nil {
		t.Fatal(err)
	}
	return b, res
}

// /sign and /sign/batch answer with a bundle per signature when asked, for
// every key type and format, on both TEEs; each bundle matches the schema
// and verifies.
func TestSignReturnsBundles(t *testing.T) {
	for _, tee := range []string{"sim-tdx", "sim-sev-snp"} {
		ts, _ := newServerWith(t, tee, nil, "127.0.0.0/8")
		cases := []struct {
			keyType, format, payload, enc string
			message                       []byte
		}{
			{"secp256k1", "der", "hello", "utf8", []byte("hello")},
			{"ed25519", "der", "aGVsbG8=", "base64", []byte("hello")},
			{"secp256k1", "eth_personal_sign", "hello", "utf8", []byte("hello")},
			{"secp256k1", "eth_raw", strings.Repeat("ab", 32), "hex", []byte(strings.Repeat("\xab", 32))},
		}
		for _, c := range cases {
			code, data := postRaw(t, ts.URL+"/sign", `{"key_type":"`+c.keyType+`","format":"`+c.format+`","payload":"`+c.payload+`","payload_encoding":"`+c.enc+`","bundle":true}`)
			var reply struct {
				Signature string          `json:"signature"`
				Bundle    json.RawMessage `json:"bundle"`
			}
			if code != 200 || json.Unmarshal(data, &reply) != nil || reply.Bundle == nil {
				t.Fatalf("%s %s %s: %d %s", tee, c.keyType, c.format, code, data)
			}
			b, res := verifyBundle(t, reply.Bundle, ts.Root)
			if !res.Valid {
				t.Fatalf("%s %s %s: bundle does not verify: %+v", tee, c.keyType, c.format, res.Checks)
			}
			if b.SignatureText() != reply.Signature || string(b.Message) != string(c.message) || b.SignatureFormat != c.format || b.KeyType != c.keyType {
				t.Fatalf("%s %s %s: bundle disagrees with the reply: %+v", tee, c.keyType, c.format, b)
			}
			if (tee == "sim-sev-snp") != (b.TEE == "sev-snp") || (b.TEE == "sev-snp") != (len(b.CertTable) > 0) {
				t.Fatalf("%s: bundle tee %s, cert table of %d bytes", tee, b.TEE, len(b.CertTable))
			}
		}
		code, data := postRaw(t, ts.URL+"/sign/batch", `{"key_type":"ed25519","payloads":["a","b","c"],"bundle":true}`)
		var batch struct {
			Signatures []string          `json:"signatures"`
			Bundle     []json.RawMessage `json:"bundle"`
		}
		if code != 200 || json.Unmarshal(data, &batch) != nil || len(batch.Bundle) != 3 {
			t.Fatalf("%s batch: %d %s", tee, code, data)
		}
		for i, p := range []string{"a", "b", "c"} {
			b, res := verifyBundle(t, batch.Bundle[i], ts.Root)
			if !res.Valid || string(b.Message) != p || b.SignatureText() != batch.Signatures[i] {
				t.Fatalf("%s batch bundle %d: valid %v, message %q", tee, i, res.Valid, b.Message)
			}
		}
		// Without "bundle" (or with false) there is none.
		for _, body := range []string{`{"payload":"x"}`, `{"payload":"x","bundle":false}`} {
			if _, data := postRaw(t, ts.URL+"/sign", body); strings.Contains(string(data), "bundle") {
				t.Fatalf("%s: %s answered with a bundle: %s", tee, body, data)
			}
		}
	}
}

// A bundle's bytes count against the held-bytes cap: a request whose
// bundles could never fit is refused with what to do, and "bundle" takes
// only a boolean.
func TestBundleRequestsAreBounded(t *testing.T) {
	ts, _ := newServerWith(t, "sim-tdx", func(c *signer.Config) { c.HeldBytes = 8192 }, "127.0.0.0/8")
	code, data := postRaw(t, ts.URL+"/sign", `{"payload":"x","bundle":true}`)
	if code != 400 || !strings.Contains(string(data), "ask fewer payloads") {
		t.Fatalf("bundle over the cap: %d %s", code, data)
	}
	if code, data := postRaw(t, ts.URL+"/sign", `{"payload":"x"}`); code != 200 {
		t.Fatalf("plain request: %d %s", code, data)
	}
	for _, v := range []string{`"true"`, `1`, `null`} {
		if code, data := postRaw(t, ts.URL+"/sign", `{"payload":"x","bundle":`+v+`}`); code != 400 || !strings.Contains(string(data), "true or false") {
			t.Fatalf("bundle %s: %d %s", v, code, data)
		}
	}
}
