package bundle_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/verify"
)

// sampleBundle is a bundle of the real SecretVM sample: its TDX quote, its
// ed25519 key, and a message signed with the sample's published private key.
func sampleBundle(t testing.TB) *bundle.Bundle {
	t.Helper()
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("My Secret Message")
	return &bundle.Bundle{
		MediaType: bundle.MediaType, TEE: "tdx", KeyType: "ed25519", SignatureFormat: bundle.FormatDER,
		PublicKey: string(testutil.SampleFile(t, "public_key.pem")),
		Quote:     strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt"))),
		Message:   msg, Signature: k.Sign(msg),
	}
}

// A bundle survives Marshal and Decode, matches the schema, and verifies.
func TestRoundTripRealSample(t *testing.T) {
	b := sampleBundle(t)
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckBundleSchema(t, data)
	got, err := bundle.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.VerifyBundle(context.Background(), got, verify.Options{Offline: true, AnyWorkload: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || res.TEE != "tdx" || res.KeyType != "ed25519" {
		t.Fatalf("sample bundle: %+v", res)
	}
	// Without a pinned workload it is not valid: the bundle does not carry
	// the expected workload.
	res, err = verify.VerifyBundle(context.Background(), got, verify.Options{Offline: true})
	if err != nil || res.Valid {
		t.Fatalf("unpinned: %v %+v", err, res)
	}
}

// Strict decoding: each malformed bundle is refused with an error that
// says what is wrong.
func TestDecodeRefuses(t *testing.T) {
	good, err := sampleBundle(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	secpPEM := func() string {
		k, _ := keys.Generate(keys.Secp256k1)
		return string(k.Public().MarshalPEM())
	}()
	cases := []struct {
		name, doc, want string
	}{
		{"unknown field", edit(func(m map[string]any) { m["extra"] = 1 }), "unknown object member"},
		{"case-folded name", edit(func(m map[string]any) { m["Tee"] = m["tee"]; delete(m, "tee") }), "unknown object member"},
		{"duplicate name", strings.Replace(string(good), `"tee": "tdx"`, `"tee": "tdx", "tee": "tdx"`, 1), "duplicate"},
		{"wrong type", edit(func(m map[string]any) { m["message"] = 5 }), "number into Go []uint8 within \"/message\""},
		{"bad base64", edit(func(m map[string]any) { m["signature"] = "not base64!" }), "base64"},
		{"trailing data", string(good) + "{}", "after top-level value"},
		{"no media type", edit(func(m map[string]any) { delete(m, "media_type") }), "media_type is missing"},
		{"other version", edit(func(m map[string]any) { m["media_type"] = "application/vnd.teesign.bundle.v2+json" }), "version 1"},
		{"key type disagrees with the key", edit(func(m map[string]any) { m["key_type"] = "secp256k1" }), "key_type says secp256k1 but public_key is an ed25519 key"},
		{"key disagrees with the key type", edit(func(m map[string]any) { m["public_key"] = secpPEM }), "key_type says ed25519 but public_key is an secp256k1 key"},
		{"unknown key type", edit(func(m map[string]any) { m["key_type"] = "rsa" }), "key_type \"rsa\""},
		{"tee disagrees with the quote", edit(func(m map[string]any) { m["tee"] = "sev-snp" }), "tee says sev-snp but the quote is a tdx quote"},
		{"eth format with ed25519", edit(func(m map[string]any) { m["signature_format"] = "eth_personal_sign" }), "needs key_type secp256k1"},
		{"cert table with TDX", edit(func(m map[string]any) { m["cert_table"] = "AAAA" }), "SEV-SNP bundles only"},
		{"no message", edit(func(m map[string]any) { delete(m, "message") }), "message is missing"},
		{"no signature", edit(func(m map[string]any) { delete(m, "signature") }), "signature is missing"},
		{"no quote", edit(func(m map[string]any) { delete(m, "quote") }), "quote is missing"},
		{"not a quote", edit(func(m map[string]any) { m["quote"] = "00" }), "quote:"},
		{"not an object", `[]`, "not a teesign bundle"},
	}
	for _, c := range cases {
		_, err := bundle.Decode([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// An empty message is a message.
	if _, err := bundle.Decode([]byte(edit(func(m map[string]any) { m["message"] = "" }))); err != nil {
		t.Errorf("empty message: %v", err)
	}
}

// VerifyBundle refuses options that contradict the bundle, and reports a
// changed signature byte as the signature check failing.
func TestVerifyBundleOptions(t *testing.T) {
	b := sampleBundle(t)
	ctx := context.Background()
	other, _ := keys.Generate(keys.Ed25519)
	for name, o := range map[string]verify.Options{
		"key type":   {KeyType: "secp256k1", AnyWorkload: true, Offline: true},
		"format":     {Format: "eth_raw", AnyWorkload: true, Offline: true},
		"public key": {PublicKeyPEM: other.Public().MarshalPEM(), AnyWorkload: true, Offline: true},
	} {
		if _, err := verify.VerifyBundle(ctx, b, o); err == nil {
			t.Errorf("%s that disagrees with the bundle: no error", name)
		}
	}
	b.Signature[10] ^= 1
	res, err := verify.VerifyBundle(ctx, b, verify.Options{AnyWorkload: true, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Checks {
		if want := map[bool]string{true: "fail", false: "pass"}[c.Name == "signature"]; c.Status != want && c.Name != "tcb_status" {
			t.Errorf("changed signature byte: %s = %s, want %s", c.Name, c.Status, want)
		}
	}
}

func FuzzBundleDecode(f *testing.F) {
	good, err := sampleBundle(f).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"media_type":"` + bundle.MediaType + `","message":"","signature":"` + base64.StdEncoding.EncodeToString([]byte{1}) + `"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := bundle.Decode(data)
		if err != nil {
			return
		}
		// What Decode accepts is consistent and round-trips.
		if err := b.Check(); err != nil {
			t.Fatalf("Decode accepted a bundle Check refuses: %v", err)
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := bundle.Decode(out)
		if err != nil || again.Quote != b.Quote || string(again.Message) != string(b.Message) || string(again.Signature) != string(b.Signature) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
