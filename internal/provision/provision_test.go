package provision_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/compose"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/provision"
	"github.com/teesign/teesign/internal/quote"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestComposeSyntaxes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ".env", "KEYDIR=./keys\n")
	a := write(t, dir, "a.yaml", `
services:
  short:
    image: x
    volumes:
      - ${KEYDIR}/docker_public_key_secp256k1.pem:/k.pem
      - ${QUOTEDIR:-./quotes}/docker_attestation_secp256k1.txt:/q.txt:ro
      - data:/data
      - ./other.txt:/other.txt
  long:
    image: x
    volumes:
      - type: bind
        source: ./long/docker_public_key_ed25519.pem
        target: /app/pub.pem
volumes:
  data: {}
`)
	b := write(t, dir, "sub/b.yaml", `
services:
  extra:
    image: y
    volumes:
      - ./docker_attestation_ed25519.txt:/q.txt
`)
	proj, err := compose.Load(context.Background(), []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range proj.Mounts {
		got[m.Service+" "+string(m.Kind)+" "+string(m.Alg)] = m.Source
	}
	want := map[string]string{
		"short public_key secp256k1":  filepath.Join(dir, "keys/docker_public_key_secp256k1.pem"),
		"short attestation secp256k1": filepath.Join(dir, "quotes/docker_attestation_secp256k1.txt"),
		"long public_key ed25519":     filepath.Join(dir, "long/docker_public_key_ed25519.pem"),
		// docker compose resolves every -f file's relative paths against the first file's folder.
		"extra attestation ed25519": filepath.Join(dir, "docker_attestation_ed25519.txt"),
	}
	if len(got) != len(want) {
		t.Fatalf("mounts %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
	if len(proj.Contents) != 2 {
		t.Fatal("compose contents not kept for RTMR3")
	}
}

func TestBadMountWritesNothing(t *testing.T) {
	for _, name := range []string{"docker_public_key_rsa.pem", "docker_attestation_ed25519.pem"} {
		dir := t.TempDir()
		f := write(t, dir, "docker-compose.yaml", `
services:
  good:
    image: x
    volumes: ["./crypto/docker_public_key_ed25519.pem:/a.pem"]
  app:
    image: x
    volumes: ["./crypto/`+name+`:/b"]
`)
		state := filepath.Join(dir, "state")
		_, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: state, TEE: "sim-tdx"})
		if err == nil || !strings.Contains(err.Error(), `service "app"`) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "docker_public_key_secp256k1.pem") {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range []string{state, filepath.Join(dir, "crypto")} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("%s: %s was created", name, p)
			}
		}
	}
}

func TestProvisionIdempotentAndRestart(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "docker-compose.yaml", `
services:
  app:
    image: x
    volumes:
      - ./crypto/docker_public_key_secp256k1.pem:/a
      - ./crypto/docker_attestation_secp256k1.txt:/b
      - ./crypto/docker_public_key_ed25519.pem:/c
      - ./crypto/docker_attestation_ed25519.txt:/d
`)
	opts := provision.Options{ComposeFiles: []string{f}, StateDir: filepath.Join(dir, "state"), TEE: "sim-tdx"}
	res, err := provision.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 8 { // four in the crypto directory, four mounts (the same paths)
		t.Fatalf("files: %v", res.Files)
	}
	// A second process is refused while the first holds the state.
	if _, err := provision.Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("concurrent provision: %v", err)
	}
	pub1, _ := os.ReadFile(filepath.Join(dir, "crypto/docker_public_key_secp256k1.pem"))
	res.Close()
	res2, err := provision.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Close()
	pub2, _ := os.ReadFile(filepath.Join(dir, "crypto/docker_public_key_secp256k1.pem"))
	if !bytes.Equal(pub1, pub2) {
		t.Fatal("public key changed across a restart")
	}
	for _, fi := range res2.Files {
		if fi.Kind == compose.PublicKey && fi.Changed {
			t.Fatalf("%s rewritten with the same bytes", fi.Path)
		}
		st, _ := os.Stat(fi.Path)
		if st.Mode().Perm() != 0o644 {
			t.Fatalf("%s mode %v", fi.Path, st.Mode())
		}
	}
	// The new quote binds the same key.
	for _, alg := range keys.Algs() {
		text, _ := os.ReadFile(filepath.Join(dir, "crypto", compose.FileName(compose.Attestation, alg)))
		if !bytes.HasSuffix(text, []byte("\n")) || bytes.Count(text, []byte("\n")) != 1 {
			t.Fatalf("%s quote file is not one line", alg)
		}
		raw, kind, err := quote.Decode(text)
		if err != nil || kind != quote.TDX {
			t.Fatal(err)
		}
		rd, _ := quote.ReportData(raw)
		k, err := keys.PublicKeyFromReportData(alg, rd)
		if err != nil || !k.Equal(res2.Identities[alg].Key.Public()) {
			t.Fatalf("%s: quote binds another key: %v", alg, err)
		}
	}
}

// The legacy private key mount: refused, writing nothing, unless
// --allow-private-key-mounts; then written 0600, the state's key, with a
// warning.
func TestLegacyPrivateKeyMount(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "docker-compose.yaml", `
services:
  legacy:
    image: x
    volumes: ["./keys/docker_private_key_ed25519.pem:/key.pem"]
`)
	_, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: filepath.Join(dir, "state"), TEE: "sim-tdx"})
	if err == nil || !strings.Contains(err.Error(), `service "legacy"`) || !strings.Contains(err.Error(), "docker_private_key_ed25519.pem") || !strings.Contains(err.Error(), "--allow-private-key-mounts") {
		t.Fatalf("private key mount without the flag: %v", err)
	}
	for _, p := range []string{filepath.Join(dir, "state"), filepath.Join(dir, "keys"), filepath.Join(dir, "crypto")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s was written although the mount was refused", p)
		}
	}
	var logs strings.Builder
	res, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: filepath.Join(dir, "state"), TEE: "sim-tdx",
		AllowPrivateKeyMounts: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	p := filepath.Join(dir, "keys", "docker_private_key_ed25519.pem")
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", st, err)
	}
	data, _ := os.ReadFile(p)
	k, err := keys.ParsePrivateKeyPEM(data)
	if err != nil || !k.Public().Equal(res.Identities[keys.Ed25519].Key.Public()) {
		t.Fatalf("mounted private key is not the state's: %v", err)
	}
	if !strings.Contains(logs.String(), "PRIVATE key") {
		t.Fatalf("no warning for a mounted private key:\n%s", logs.String())
	}
}

// Persistent keys keep their last quotes in the state directory; a mount
// that cannot be written is reported with the service that mounts it.
func TestQuotesKeptAndMountErrorsNamed(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "docker-compose.yaml")
	os.WriteFile(f, []byte("services:\n  signer-app:\n    image: alpine\n    volumes:\n      - ./blocked/crypto/docker_public_key_ed25519.pem:/k.pem\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "blocked"), []byte("a file, not a directory"), 0o644)
	state := filepath.Join(dir, "state")
	_, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: state, TEE: "sim-tdx", CryptoDir: filepath.Join(dir, "crypto")})
	if err == nil || !strings.Contains(err.Error(), `service "signer-app" mount`) {
		t.Fatalf("unwritable mount: %v", err)
	}
	os.Remove(filepath.Join(dir, "blocked"))
	res, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: state, TEE: "sim-tdx", CryptoDir: filepath.Join(dir, "crypto")})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for _, alg := range keys.Algs() {
		if _, err := os.Stat(filepath.Join(state, keystore.QuoteFile(alg))); err != nil {
			t.Errorf("persistent keys: the %s quote is not kept: %v", alg, err)
		}
	}
}

// A mount that passes the checks but cannot be written when the files are
// written (here: procfs, where even root makes no directory) is reported
// with the service that mounts it.
func TestWriteFailureNamesTheService(t *testing.T) {
	dir := t.TempDir()
	src := "/proc/teesign-no-such-directory/crypto/docker_public_key_ed25519.pem"
	if _, err := os.Lstat(filepath.Dir(src)); !errors.Is(err, os.ErrNotExist) {
		t.Skipf("needs procfs at /proc: %v", err)
	}
	f := filepath.Join(dir, "docker-compose.yaml")
	os.WriteFile(f, []byte("services:\n  signer-app:\n    image: alpine\n    volumes:\n      - "+src+":/k.pem\n"), 0o644)
	_, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: filepath.Join(dir, "state"), TEE: "sim-tdx", CryptoDir: filepath.Join(dir, "crypto")})
	if err == nil || !strings.Contains(err.Error(), `service "signer-app" mount `+src) {
		t.Fatalf("a mount that cannot be written: %v", err)
	}
}
