package keys_test

import (
	"encoding/base64"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

func stdB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// highS returns the DER signature (r, N-s) for a DER signature (r, s).
func highS(t *testing.T, der []byte) []byte {
	t.Helper()
	var r, s big.Int
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) {
		t.Fatal("bad DER")
	}
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	s.Sub(n, &s)
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(&r)
		b.AddASN1BigInt(&s)
	})
	return b.BytesOrPanic()
}
