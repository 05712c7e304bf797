package keys_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/testutil"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8032 section 7.1, TEST 1-3.
func TestEd25519RFC8032(t *testing.T) {
	vectors := []struct{ seed, pub, msg, sig string }{
		{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
			"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
			"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
		{"c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
			"6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
	}
	for i, v := range vectors {
		k, err := keys.NewEd25519FromSeed(unhex(t, v.seed))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(k.Public().Bytes()); got != v.pub {
			t.Errorf("vector %d: public key %s, want %s", i+1, got, v.pub)
		}
		sig := k.Sign(unhex(t, v.msg))
		if got := hex.EncodeToString(sig); got != v.sig {
			t.Errorf("vector %d: signature %s, want %s", i+1, got, v.sig)
		}
		if err := k.Public().Verify(unhex(t, v.msg), sig); err != nil {
			t.Errorf("vector %d: verify: %v", i+1, err)
		}
	}
}

// The well-known RFC 6979 secp256k1 vector: key 1, "Satoshi Nakamoto".
func TestSecp256k1Deterministic(t *testing.T) {
	one := make([]byte, 32)
	one[31] = 1
	k, err := keys.NewSecp256k1FromScalar(one)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Satoshi Nakamoto")
	sig := k.Sign(msg)
	want := "3045" + "022100" + "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8" +
		"0220" + "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5"
	if got := hex.EncodeToString(sig); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	for i := 0; i < 3; i++ {
		if !bytes.Equal(k.Sign(msg), sig) {
			t.Fatal("the same key and message gave a different signature")
		}
	}
	if err := k.Public().Verify(msg, sig); err != nil {
		t.Fatal(err)
	}
}

func TestSecp256k1RejectsHighSAndTampering(t *testing.T) {
	k, err := keys.Generate(keys.Secp256k1)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig := k.Sign(msg)
	// Build the high-S twin: s' = N - s.
	high := highS(t, sig)
	if err := k.Public().Verify(msg, high); !errors.Is(err, keys.ErrBadSignature) || !strings.Contains(err.Error(), "high S") {
		t.Fatalf("high-S signature: got %v, want a high-S rejection", err)
	}
	if err := k.Public().Verify([]byte("hellO"), sig); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("other message: got %v", err)
	}
	bad := append([]byte(nil), sig...)
	bad[len(bad)-1] ^= 1
	if err := k.Public().Verify(msg, bad); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("flipped byte: got %v", err)
	}
	other, _ := keys.Generate(keys.Secp256k1)
	if err := other.Public().Verify(msg, sig); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("other key: got %v", err)
	}
	if err := k.Public().Verify(msg, append(sig, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestSignaturesAreLowSAndVaryInLength(t *testing.T) {
	k, _ := keys.Generate(keys.Secp256k1)
	lengths := map[int]int{}
	for i := 0; i < 400; i++ {
		msg := []byte{byte(i), byte(i >> 8)}
		sig := k.Sign(msg)
		lengths[len(sig)]++
		if len(sig) < 68 || len(sig) > 71 {
			t.Fatalf("DER signature of %d bytes", len(sig))
		}
		if err := k.Public().Verify(msg, sig); err != nil {
			t.Fatal(err)
		}
	}
	if len(lengths) < 2 {
		t.Fatalf("all signatures had the same length %v: DER lengths should vary", lengths)
	}
}

func TestReportDataRoundTrip(t *testing.T) {
	for _, alg := range keys.Algs() {
		k, _ := keys.Generate(alg)
		rd := k.Public().ReportData()
		back, err := keys.PublicKeyFromReportData(alg, rd[:])
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if !back.Equal(k.Public()) {
			t.Fatalf("%s: report_data round trip changed the key", alg)
		}
	}
	k, _ := keys.Generate(keys.Secp256k1)
	rd := k.Public().ReportData()
	if !bytes.Equal(rd[:], k.Public().Bytes()[1:]) {
		t.Fatal("secp256k1 report_data is not X‖Y")
	}
	// Compressed layout from another producer.
	var comp [64]byte
	copy(comp[:], compress(k.Public().Bytes()))
	back, err := keys.PublicKeyFromReportData(keys.Secp256k1, comp[:])
	if err != nil || !back.Equal(k.Public()) {
		t.Fatalf("compressed report_data: %v", err)
	}
	// ed25519 with non-zero tail is not a binding.
	e, _ := keys.Generate(keys.Ed25519)
	erd := e.Public().ReportData()
	erd[63] = 1
	if _, err := keys.PublicKeyFromReportData(keys.Ed25519, erd[:]); err == nil {
		t.Fatal("ed25519 report_data with a non-zero tail accepted")
	}
	// A point off the curve.
	var off [64]byte
	off[0] = 1
	if _, err := keys.PublicKeyFromReportData(keys.Secp256k1, off[:]); err == nil {
		t.Fatal("off-curve point accepted")
	}
	if _, err := keys.PublicKeyFromReportData(keys.Ed25519, erd[:10]); err == nil {
		t.Fatal("short report_data accepted")
	}
}

func compress(unc []byte) []byte {
	out := make([]byte, 33)
	out[0] = 2 + unc[64]&1
	copy(out[1:], unc[1:33])
	return out
}

func TestPEMRoundTripAndOpenSSLPrefixes(t *testing.T) {
	prefixes := map[keys.Alg][2]string{
		keys.Secp256k1: {"3056301006072a8648ce3d020106052b8104000a034200", "308184020100301006072a8648ce3d020106052b8104000a046d306b"},
		keys.Ed25519:   {"302a300506032b6570032100", "302e020100300506032b657004220420"},
	}
	for _, alg := range keys.Algs() {
		k, _ := keys.Generate(alg)
		if !strings.HasPrefix(hex.EncodeToString(k.Public().MarshalPKIX()), prefixes[alg][0]) {
			t.Errorf("%s SPKI prefix differs from OpenSSL's", alg)
		}
		if !strings.HasPrefix(hex.EncodeToString(k.MarshalPKCS8()), prefixes[alg][1]) {
			t.Errorf("%s PKCS#8 prefix differs from OpenSSL's", alg)
		}
		pub, err := keys.ParsePublicKeyPEM(k.Public().MarshalPEM())
		if err != nil || !pub.Equal(k.Public()) {
			t.Fatalf("%s public PEM round trip: %v", alg, err)
		}
		priv, err := keys.ParsePrivateKeyPEM(k.MarshalPEM())
		if err != nil || !priv.Public().Equal(k.Public()) {
			t.Fatalf("%s private PEM round trip: %v", alg, err)
		}
	}
	k, _ := keys.Generate(keys.Secp256k1)
	if n := len(k.MarshalPKCS8()); n != 135 {
		t.Errorf("secp256k1 PKCS#8 is %d bytes, OpenSSL writes 135", n)
	}
}

func TestStrictDecoding(t *testing.T) {
	k, _ := keys.Generate(keys.Secp256k1)
	spki := k.Public().MarshalPKIX()
	cases := map[string]struct {
		pem  []byte
		want string
	}{
		"trailing DER": {pemOf("PUBLIC KEY", append(append([]byte(nil), spki...), 0)), "trailing"},
		"P-256 curve":  {pemOf("PUBLIC KEY", bytes.Replace(spki, unhexS("06052b8104000a"), unhexS("06082a8648ce3d030107")[:7], 1)), ""},
		"off curve":    {pemOf("PUBLIC KEY", offCurve(spki)), "secp256k1 public key"},
		"RSA OID":      {pemOf("PUBLIC KEY", bytes.Replace(spki, unhexS("2a8648ce3d0201"), unhexS("2a864886f70d01"), 1)), "unsupported algorithm OID"},
		"text after":   {append(k.Public().MarshalPEM(), []byte("junk\n")...), "outside a PEM block"},
		"wrong type":   {pemOf("CERTIFICATE", spki), "PUBLIC KEY"},
		"empty":        {nil, "no PEM block"},
	}
	for name, c := range cases {
		_, err := keys.ParsePublicKeyPEM(c.pem)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
	}
	// Scalars 0 and N.
	n := unhexS("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
	for name, scalar := range map[string][]byte{"zero": make([]byte, 32), "N": n, "short": n[:31]} {
		if _, err := keys.NewSecp256k1FromScalar(scalar); err == nil {
			t.Errorf("scalar %s accepted", name)
		}
	}
	// A PKCS#8 whose scalar is N, built by patching a real key.
	priv := k.MarshalPKCS8()
	// layout: ... 0420 <32-byte scalar> a144034200 <65-byte point>
	idx := bytes.Index(priv, unhexS("a144034200"))
	copy(priv[idx-32:idx], n)
	if _, err := keys.ParsePKCS8PrivateKey(priv); err == nil || !strings.Contains(err.Error(), "group order") {
		t.Errorf("scalar N in PKCS#8: %v", err)
	}
	// Mismatched embedded public key.
	priv = k.MarshalPKCS8()
	priv[len(priv)-1] ^= 1
	if _, err := keys.ParsePKCS8PrivateKey(priv); err == nil {
		t.Error("mismatched embedded public key accepted")
	}
}

func offCurve(spki []byte) []byte {
	b := append([]byte(nil), spki...)
	b[len(b)-1] ^= 1
	return b
}

func unhexS(s string) []byte { b, _ := hex.DecodeString(s); return b }

func pemOf(typ string, der []byte) []byte {
	return []byte("-----BEGIN " + typ + "-----\n" + b64lines(der) + "-----END " + typ + "-----\n")
}

func b64lines(b []byte) string {
	s := stdB64(b)
	var out strings.Builder
	for len(s) > 64 {
		out.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	return out.String() + s + "\n"
}

func TestSecretVMSampleKeyPair(t *testing.T) {
	priv, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.ParsePublicKeyPEM(testutil.SampleFile(t, "public_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if priv.Alg() != keys.Ed25519 || !priv.Public().Equal(pub) {
		t.Fatal("the sample's private and public keys do not match")
	}
	if got := hex.EncodeToString(pub.Bytes()); got != "cfd9089479ff8dfa4819bab866c06e173cb2bbce03bdcc0b62c114af334508dc" {
		t.Fatalf("sample public key %s", got)
	}
}

// Every PEM teesign writes passes OpenSSL's checks and loads in Python;
// every signature verifies with both.
func TestInteropOpenSSLAndPython(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	py := testutil.Python(t)
	for _, alg := range keys.Algs() {
		t.Run(string(alg), func(t *testing.T) {
			dir := t.TempDir()
			k, _ := keys.Generate(alg)
			privPath := filepath.Join(dir, "priv.pem")
			pubPath := filepath.Join(dir, "pub.pem")
			msgPath := filepath.Join(dir, "msg")
			sigPath := filepath.Join(dir, "sig")
			msg := []byte("My Secret Message \x00\xff binary too")
			sig := k.Sign(msg)
			for p, d := range map[string][]byte{privPath: k.MarshalPEM(), pubPath: k.Public().MarshalPEM(), msgPath: msg, sigPath: sig} {
				if err := os.WriteFile(p, d, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			testutil.Run(t, openssl, "pkey", "-in", privPath, "-check", "-noout")
			testutil.Run(t, openssl, "pkey", "-pubin", "-in", pubPath, "-noout")
			// OpenSSL re-derives the same public key from our private key.
			derived := testutil.Run(t, openssl, "pkey", "-in", privPath, "-pubout")
			if !bytes.Equal(derived, k.Public().MarshalPEM()) {
				t.Fatalf("openssl derives another public key PEM:\n%s", derived)
			}
			if alg == keys.Secp256k1 {
				testutil.Run(t, openssl, "dgst", "-sha256", "-verify", pubPath, "-signature", sigPath, msgPath)
			} else {
				testutil.Run(t, openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", msgPath, "-sigfile", sigPath)
			}
			script := `
import sys
from cryptography.hazmat.primitives import serialization, hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
priv = serialization.load_pem_private_key(open(sys.argv[1],'rb').read(), None)
pub = serialization.load_pem_public_key(open(sys.argv[2],'rb').read())
msg = open(sys.argv[3],'rb').read(); sig = open(sys.argv[4],'rb').read()
if isinstance(pub, ec.EllipticCurvePublicKey):
    assert pub.curve.name == 'secp256k1', pub.curve.name
    pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
else:
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    pub.verify(sig, msg)
assert priv.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
print("ok")
`
			out := testutil.Run(t, py, "-c", script, privPath, pubPath, msgPath, sigPath)
			if strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("python: %s", out)
			}
			// A tampered signature must fail in OpenSSL too (the check can fail).
			bad := append([]byte(nil), sig...)
			bad[len(bad)-2] ^= 0x40
			os.WriteFile(sigPath, bad, 0o600)
			var err error
			if alg == keys.Secp256k1 {
				_, err = testutil.RunErr(openssl, "dgst", "-sha256", "-verify", pubPath, "-signature", sigPath, msgPath)
			} else {
				_, err = testutil.RunErr(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", msgPath, "-sigfile", sigPath)
			}
			if err == nil {
				t.Fatal("openssl accepted a tampered signature")
			}
		})
	}
}

// Keys made by OpenSSL load in teesign and sign verifiably.
func TestOpenSSLKeysLoad(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	dir := t.TempDir()
	gen := map[string][]string{
		"ed25519-pkcs8.pem":   {"genpkey", "-algorithm", "ed25519", "-out", filepath.Join(dir, "ed25519-pkcs8.pem")},
		"secp256k1-sec1.pem":  {"ecparam", "-name", "secp256k1", "-genkey", "-out", filepath.Join(dir, "secp256k1-sec1.pem")},
		"secp256k1-pkcs8.pem": {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-out", filepath.Join(dir, "secp256k1-pkcs8.pem")},
	}
	for name, args := range gen {
		testutil.Run(t, openssl, args...)
		pemBytes, _ := os.ReadFile(filepath.Join(dir, name))
		k, err := keys.ParsePrivateKeyPEM(pemBytes)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, pemBytes)
		}
		// The public key OpenSSL derives is the one teesign derives.
		pubPEM := testutil.Run(t, openssl, "pkey", "-in", filepath.Join(dir, name), "-pubout")
		pub, err := keys.ParsePublicKeyPEM(pubPEM)
		if err != nil || !pub.Equal(k.Public()) {
			t.Fatalf("%s: public key differs from OpenSSL's: %v", name, err)
		}
		msg := []byte("signed by an openssl key")
		if err := pub.Verify(msg, k.Sign(msg)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The SEC1 file from ecparam has an EC PARAMETERS block first.
	sec1, _ := os.ReadFile(filepath.Join(dir, "secp256k1-sec1.pem"))
	if !bytes.Contains(sec1, []byte("EC PARAMETERS")) || !bytes.Contains(sec1, []byte("EC PRIVATE KEY")) {
		t.Fatalf("unexpected ecparam output:\n%s", sec1)
	}
	// A P-256 key is refused with a message naming the curve.
	testutil.Run(t, openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", filepath.Join(dir, "p256.pem"))
	p256, _ := os.ReadFile(filepath.Join(dir, "p256.pem"))
	if _, err := keys.ParsePrivateKeyPEM(p256); err == nil || !strings.Contains(err.Error(), "not secp256k1") {
		t.Fatalf("P-256 key: %v", err)
	}
}
