package verify_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/verify"
)

// A full offline verification of a simulated TDX quote, its root trusted
// as a service trusts it (sorted once): the part a verdict cache saves.
func BenchmarkVerifyQuote(b *testing.B) {
	dir, q, msg, sig := simTDXQuote(b)
	roots := trusted(b, filepath.Join(dir, simtee.TDXRootFile))
	trust, err := verify.NewTrust(roots, verify.AMDCerts{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{KeyType: "ed25519", Trust: trust, Offline: true, AnyWorkload: true})
		if err != nil || !r.Valid {
			b.Fatal(err)
		}
	}
}
