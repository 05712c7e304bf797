package keys_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/teesign/teesign/internal/keys"
)

// An Ethereum signature with a high S (the twin N - s of a valid one) is
// refused, as EIP-2 requires; S exactly N/2 is still low.
func TestEthHighSIsRefusedAndHalfOrderIsLow(t *testing.T) {
	k, _ := keys.Generate(keys.Secp256k1)
	digest := keys.EthPersonalHash([]byte("low s"))
	sig, err := k.SignEth(digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.RecoverEth(digest, sig); err != nil {
		t.Fatalf("a low-S signature: %v", err)
	}
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:64])
	s.Negate()
	twin := append([]byte(nil), sig...)
	b := s.Bytes()
	copy(twin[32:64], b[:])
	twin[64] = 27 + 28 - twin[64] // the twin recovers the key with the other parity
	if _, err := keys.RecoverEth(digest, twin); !errors.Is(err, keys.ErrBadSignature) || !strings.Contains(err.Error(), "high S") {
		t.Fatalf("the high-S twin: %v, want a high-S refusal", err)
	}
	// Recovery finds a key for any valid r and s: with s = N/2 exactly the
	// signature is low-S and recovers; with N/2 + 1 it is refused.
	half, _ := hex.DecodeString("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")
	edge := append([]byte(nil), sig...)
	copy(edge[32:64], half)
	if _, err := keys.RecoverEth(digest, edge); err != nil {
		t.Fatalf("s = N/2: %v", err)
	}
	edge[63]++
	if _, err := keys.RecoverEth(digest, edge); !errors.Is(err, keys.ErrBadSignature) || !strings.Contains(err.Error(), "high S") {
		t.Fatalf("s = N/2 + 1: %v, want a high-S refusal", err)
	}
}

// EIP-55's own test vectors: all caps, all lower, and mixed.
func TestEIP55Vectors(t *testing.T) {
	for _, want := range []string{
		"0x52908400098527886E0F7030069857D2E4169EE7",
		"0x8617E340B3D01FA5F11F306F4090FD50E238070D",
		"0xde709f2102306220921060314715629080e2fb77",
		"0x27b1fdb04752bbc536007a920d24acb045561c26",
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
	} {
		raw, err := hex.DecodeString(want[2:])
		if err != nil {
			t.Fatal(err)
		}
		if got := keys.EIP55(raw); got != want {
			t.Errorf("EIP55(%x) = %s, want %s", raw, got, want)
		}
	}
}

// A secp256k1 key bound in report_data as a compressed point (33 bytes,
// then zeros) is read for either parity of Y.
func TestCompressedReportDataOfBothParities(t *testing.T) {
	seen := map[byte]bool{}
	for len(seen) < 2 {
		k, _ := keys.Generate(keys.Secp256k1)
		xy := k.Public().ReportData()
		pub, err := secp256k1.ParsePubKey(append([]byte{0x04}, xy[:]...))
		if err != nil {
			t.Fatal(err)
		}
		rd := make([]byte, keys.ReportDataSize)
		copy(rd, pub.SerializeCompressed())
		got, err := keys.PublicKeyFromReportData(keys.Secp256k1, rd)
		if err != nil || !got.Equal(k.Public()) {
			t.Fatalf("compressed key with prefix %02x: %v", rd[0], err)
		}
		seen[rd[0]] = true
	}
}

// PKCS#8 versions 0 (RFC 5208) and 1 (RFC 5958, OneAsymmetricKey) are
// read; any other version is refused.
func TestPKCS8Versions(t *testing.T) {
	for _, alg := range []keys.Alg{keys.Ed25519, keys.Secp256k1} {
		k, _ := keys.Generate(alg)
		der := k.MarshalPKCS8()
		// SEQUENCE header, then INTEGER version: 02 01 vv.
		i := bytes.Index(der, []byte{0x02, 0x01})
		if i < 0 || i > 4 {
			t.Fatalf("%s: no version at the start of %x", alg, der[:8])
		}
		for v, ok := range map[byte]bool{0: true, 1: true, 2: false} {
			d := append([]byte(nil), der...)
			d[i+2] = v
			got, err := keys.ParsePKCS8PrivateKey(d)
			if ok && (err != nil || !got.Public().Equal(k.Public())) {
				t.Errorf("%s PKCS#8 version %d: %v", alg, v, err)
			}
			if !ok && err == nil {
				t.Errorf("%s PKCS#8 version %d accepted", alg, v)
			}
		}
	}
}
