package compose_test

import (
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/compose"
)

func TestClassify(t *testing.T) {
	for name, want := range map[string]string{
		"docker_public_key_secp256k1.pem":  "public_key secp256k1",
		"docker_attestation_ed25519.txt":   "attestation ed25519",
		"docker_private_key_ed25519.pem":   "private_key ed25519",
		"other.pem":                        "",
		"docker_public_key_rsa.pem":        "error",
		"docker_attestation_ed25519.pem":   "error",
		"docker_public_key_secp256k1.pemx": "error",
	} {
		kind, alg, ok, err := compose.Classify(name)
		got := ""
		switch {
		case err != nil:
			got = "error"
			if !strings.Contains(err.Error(), "docker_attestation_secp256k1.txt") {
				t.Errorf("%s: error does not list the accepted names: %v", name, err)
			}
		case ok:
			got = string(kind) + " " + string(alg)
		}
		if got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, n := range compose.AcceptedNames() {
		f.Add(n)
	}
	f.Add("docker_public_key_rsa.pem")
	f.Fuzz(func(t *testing.T, name string) {
		kind, alg, ok, err := compose.Classify(name)
		if ok && (err != nil || compose.FileName(kind, alg) != name) {
			t.Fatalf("%q classified as %s %s", name, kind, alg)
		}
	})
}
