package signer

import (
	"runtime"
	"strings"
	"testing"
)

func TestDecodeSignRequest(t *testing.T) {
	ok := map[string]struct {
		body, payload, alg string
	}{
		`{"key_type": "secp256k1", "payload": "My Secret Message" }`: {payload: "My Secret Message", alg: "secp256k1"},
		`{"payload":"x"}`: {payload: "x", alg: "secp256k1"},
		`{"payload":"aGk=","payload_encoding":"base64","key_type":"ed25519"}`: {payload: "hi", alg: "ed25519"},
		`{"payload":"6869","payload_encoding":"hex"}`:                         {payload: "hi", alg: "secp256k1"},
		`{"payload":"\u00e9\ud83d\ude00\n\"\\"}`:                              {payload: "é😀\n\"\\", alg: "secp256k1"},
		` {"payload":""} `:                                                    {payload: "", alg: "secp256k1"},
	}
	for body, want := range ok {
		req, err := decodeSignRequest([]byte(body), false)
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if string(req.payload) != want.payload || string(req.keyType) != want.alg {
			t.Errorf("%s: got %q %q", body, req.payload, req.keyType)
		}
	}
	bad := map[string]string{
		`{"payload":"x","payload":"y"}`: "duplicate",
		`{"payload":"x","extra":1}`:     "unknown field",
		`{"PAYLOAD":"x"}`:               "unknown field",
		`{"payload":"x"} {}`:            "trailing",
		`{"payload":"x"}x`:              "trailing",
		`{"payload":"x"}"y"`:            "trailing",
		`{"payload":"x"`:                "expected",
		`{"payload":"SGVs\r\nbG8=","payload_encoding":"base64"}`: "no line breaks",
		`{"payload":1}`:                                "must be a string",
		`{"payload":null}`:                             "must be a string",
		`{"key_type":"rsa","payload":"x"}`:             "invalid key type",
		`{"key_type":"secp256k1"}`:                     "missing field",
		"{\"payload\":\"\xff\"}":                       "UTF-8",
		`{"payload":"\ud800"}`:                         "surrogate",
		`{"payload":"\udc00x"}`:                        "surrogate",
		"{\"payload\":\"a\x00b\"}":                     "control character",
		`{"payload":"!!","payload_encoding":"base64"}`: "base64",
		`{"payload":"zz","payload_encoding":"hex"}`:    "hex",
		`{"payload":"x","payload_encoding":"rot13"}`:   "payload_encoding",
		`[]`: "object",
		``:   "object",
	}
	for body, want := range bad {
		_, err := decodeSignRequest([]byte(body), false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", body, err, want)
		}
	}
	req, err := decodeSignRequest([]byte(`{"payloads":["a","b"],"key_type":"ed25519"}`), true)
	if err != nil || len(req.payloads) != 2 || string(req.payloads[1]) != "b" {
		t.Fatalf("batch: %v %v", req, err)
	}
	for _, body := range []string{`{"payloads":[]}`, `{"payloads":"a"}`, `{"payload":"a"}`, `{"payloads":[1]}`, `{"payloads":["a",]}`} {
		if _, err := decodeSignRequest([]byte(body), true); err == nil {
			t.Errorf("batch %s accepted", body)
		}
	}
	big := `{"payloads":[` + strings.Repeat(`"a",`, MaxBatch) + `"a"]}`
	if _, err := decodeSignRequest([]byte(big), true); err == nil {
		t.Error("more than MaxBatch payloads accepted")
	}
}

func FuzzDecodeSignRequest(f *testing.F) {
	for _, s := range []string{`{"key_type": "secp256k1", "payload": "My Secret Message" }`, `{"payload":"\ud83d\ude00"}`, `{"payloads":["a","b"]}`, `{"payload":"aGk=","payload_encoding":"base64"}`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		req, err := decodeSignRequest(body, batch)
		if err == nil && req.keyType != "secp256k1" && req.keyType != "ed25519" {
			t.Fatalf("accepted key type %q", req.keyType)
		}
	})
}

// An unknown field name is reported from its first bytes: refusing a body
// whose name is a megabyte long allocates about one copy of it (the JSON
// library's duplicate-name check keeps the names it has seen), not one for
// the message, one for the switch and one for an error position as well.
func TestLongUnknownNameIsNotCopied(t *testing.T) {
	body := []byte(`{"` + strings.Repeat("\x7f", 1<<20) + `":"x"}`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 5
	for range n {
		_, err := decodeSignRequest(body, false)
		if err == nil || err.Error() != `unknown field "`+strings.Repeat(`\x7f`, 32)+`"…` {
			t.Fatalf("got %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > uint64(len(body))*3/2 {
		t.Errorf("refusing a %d-byte name allocated %d bytes", len(body), per)
	}
}
