package keys_test

import (
	"testing"

	"github.com/teesign/teesign/internal/keys"
)

func FuzzParsePEM(f *testing.F) {
	for _, alg := range keys.Algs() {
		k, _ := keys.Generate(alg)
		f.Add(k.MarshalPEM())
		f.Add(k.Public().MarshalPEM())
	}
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := keys.ParsePrivateKeyPEM(data); err == nil {
			// A key that parses must sign verifiably and round-trip.
			msg := []byte("fuzz")
			if err := k.Public().Verify(msg, k.Sign(msg)); err != nil {
				t.Fatal(err)
			}
			if _, err := keys.ParsePrivateKeyPEM(k.MarshalPEM()); err != nil {
				t.Fatal(err)
			}
		}
		if p, err := keys.ParsePublicKeyPEM(data); err == nil {
			if _, err := keys.ParsePublicKeyPEM(p.MarshalPEM()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
