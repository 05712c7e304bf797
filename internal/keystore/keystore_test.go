package keystore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/atomicfile"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
)

func TestKeysSurviveRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := map[keys.Alg]*keys.PublicKey{}
	for _, alg := range keys.Algs() {
		k, created, err := s.Key(alg)
		if err != nil || !created {
			t.Fatalf("%s: created=%v err=%v", alg, created, err)
		}
		first[alg] = k.Public()
		fi, err := os.Stat(s.KeyPath(alg))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s key file mode %v, want 0600 (%v)", alg, fi.Mode().Perm(), err)
		}
	}
	s.Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode %v, want 0700", fi.Mode().Perm())
	}
	s, err = keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, alg := range keys.Algs() {
		k, created, err := s.Key(alg)
		if err != nil || created {
			t.Fatalf("%s after restart: created=%v err=%v", alg, created, err)
		}
		if !k.Public().Equal(first[alg]) {
			t.Fatalf("%s public key changed across a restart", alg)
		}
	}
}

func TestCrashBeforeRenameKeepsOldState(t *testing.T) {
	dir := t.TempDir()
	s, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := s.Key(keys.Ed25519)
	before, _ := os.ReadFile(s.KeyPath(keys.Ed25519))
	s.Close()
	// What a crash between the temp write and the rename leaves behind.
	tmp := filepath.Join(dir, atomicfile.TempPrefix+"private_key_ed25519.pem-123")
	if err := os.WriteFile(tmp, []byte("-----BEGIN PRIVATE KEY-----\nhalf"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file not cleaned: %v", err)
	}
	after, _ := os.ReadFile(s.KeyPath(keys.Ed25519))
	if !bytes.Equal(before, after) {
		t.Fatal("key file changed")
	}
	k2, created, err := s.Key(keys.Ed25519)
	if err != nil || created || !k2.Public().Equal(k.Public()) {
		t.Fatalf("key not reloaded intact: created=%v err=%v", created, err)
	}
}

func TestSecondOpenerIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = keystore.Open(dir)
	if !errors.Is(err, keystore.ErrInUse) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second opener: %v, want ErrInUse", err)
	}
	s.Close()
	s2, err := keystore.Open(dir)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	s2.Close()
}

func TestDamagedKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	s, _ := keystore.Open(dir)
	defer s.Close()
	os.WriteFile(s.KeyPath(keys.Secp256k1), []byte("garbage"), 0o600)
	if _, _, err := s.Key(keys.Secp256k1); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged key: %v", err)
	}
	// The damaged file is not silently replaced.
	if b, _ := os.ReadFile(s.KeyPath(keys.Secp256k1)); string(b) != "garbage" {
		t.Fatal("damaged key was overwritten")
	}
}
