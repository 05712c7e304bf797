package keystore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/atomicfile"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
)

var id = keystore.Identity{TEE: "sim-tdx", Fields: map[string]string{"mr_td": "aa", "rtmr3": "bb"}}

func newKeys(t *testing.T) map[keys.Alg]*keys.PrivateKey {
	t.Helper()
	out := map[keys.Alg]*keys.PrivateKey{}
	for _, alg := range keys.Algs() {
		k, err := keys.Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		out[alg] = k
	}
	return out
}

// fixedSealer derives a fixed key, as a TEE derives the same key for the
// same workload on the same machine.
type fixedSealer struct{ key byte }

func (f fixedSealer) SealParams() ([]byte, error) { return []byte(`{"p":1}`), nil }
func (f fixedSealer) SealingKey(p []byte) ([]byte, error) {
	if string(p) != `{"p":1}` {
		return nil, errors.New("other parameters")
	}
	return bytes.Repeat([]byte{f.key}, 32), nil
}

func TestKeysSurviveRestart(t *testing.T) {
	for _, sealer := range []keystore.Sealer{nil, fixedSealer{7}} {
		dir := filepath.Join(t.TempDir(), "state")
		s, err := keystore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		priv := newKeys(t)
		if _, err := s.Create(id, priv, sealer); err != nil {
			t.Fatal(err)
		}
		for _, alg := range keys.Algs() {
			fi, err := os.Stat(s.KeyPath(alg, sealer != nil))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s key file: %v", alg, err)
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
		rec, err := s.Record()
		if err != nil || rec == nil || !rec.Identity.Equal(id) || rec.Sealed != (sealer != nil) {
			t.Fatalf("record: %+v %v", rec, err)
		}
		got, err := s.Load(rec, sealer)
		if err != nil {
			t.Fatal(err)
		}
		for _, alg := range keys.Algs() {
			if !got[alg].Public().Equal(priv[alg].Public()) {
				t.Fatalf("%s key changed across a restart", alg)
			}
		}
		s.Close()
	}
}

// Sealed files hold no private key; another sealing key (another chip or
// measurement) cannot open them, and nothing is overwritten.
func TestSealedKeysOpenOnlyUnderTheirKey(t *testing.T) {
	dir := t.TempDir()
	s, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	priv := newKeys(t)
	rec, err := s.Create(id, priv, fixedSealer{1})
	if err != nil {
		t.Fatal(err)
	}
	before := map[keys.Alg][]byte{}
	for _, alg := range keys.Algs() {
		data, _ := os.ReadFile(s.KeyPath(alg, true))
		before[alg] = data
		if bytes.Contains(data, priv[alg].MarshalPEM()) || bytes.Contains(data, []byte("PRIVATE KEY")) {
			t.Fatalf("%s sealed file holds the key in the clear", alg)
		}
	}
	if _, err := s.Load(rec, fixedSealer{2}); err == nil || !strings.Contains(err.Error(), "cannot be opened under the identity it records") {
		t.Fatalf("another sealing key: %v", err)
	}
	// The identity is bound in: the same key under another recorded
	// identity does not open either.
	other := *rec
	other.Identity = keystore.Identity{TEE: "sim-tdx", Fields: map[string]string{"mr_td": "aa", "rtmr3": "cc"}}
	if _, err := s.Load(&other, fixedSealer{1}); err == nil {
		t.Fatal("a sealed key opened under another identity")
	}
	if _, err := s.Load(rec, nil); err == nil {
		t.Fatal("sealed keys loaded without a sealer")
	}
	for _, alg := range keys.Algs() {
		if data, _ := os.ReadFile(s.KeyPath(alg, true)); !bytes.Equal(data, before[alg]) {
			t.Fatalf("%s sealed file changed after failed opens", alg)
		}
	}
	if _, err := s.Load(rec, fixedSealer{1}); err != nil {
		t.Fatal(err)
	}
}

// The state directory trusts nothing it did not make: loose modes, other
// owners and symlinks are refused with the path named, and nothing in
// them is loaded.
func TestStateTrustsNothingItDidNotMake(t *testing.T) {
	prepare := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "state")
		s, err := keystore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(id, newKeys(t), nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
		return dir
	}
	refused := func(t *testing.T, dir, path string) {
		t.Helper()
		s, err := keystore.Open(dir)
		if err == nil {
			s.Close()
			t.Fatalf("opened; want %s refused", path)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("the error does not name %s: %v", path, err)
		}
	}
	t.Run("key file mode 0644", func(t *testing.T) {
		dir := prepare(t)
		p := filepath.Join(dir, "private_key_ed25519.pem")
		os.Chmod(p, 0o644)
		refused(t, dir, p)
	})
	t.Run("directory mode 0755", func(t *testing.T) {
		dir := prepare(t)
		os.Chmod(dir, 0o755)
		refused(t, dir, dir)
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o755 {
			t.Fatal("the directory's mode was changed instead of refused")
		}
	})
	t.Run("symlinked state path", func(t *testing.T) {
		dir := prepare(t)
		link := filepath.Join(t.TempDir(), "state-link")
		os.Symlink(dir, link)
		refused(t, link, link)
	})
	t.Run("symlinked lock", func(t *testing.T) {
		dir := prepare(t)
		elsewhere := filepath.Join(t.TempDir(), "victim")
		os.Remove(filepath.Join(dir, keystore.LockFile))
		os.Symlink(elsewhere, filepath.Join(dir, keystore.LockFile))
		refused(t, dir, filepath.Join(dir, keystore.LockFile))
		if _, err := os.Lstat(elsewhere); !os.IsNotExist(err) {
			t.Fatal("the lock's symlink was followed with O_CREATE")
		}
	})
	t.Run("symlinked key file", func(t *testing.T) {
		dir := prepare(t)
		p := filepath.Join(dir, "private_key_ed25519.pem")
		target := filepath.Join(dir, "elsewhere.pem")
		os.Rename(p, target)
		os.Symlink(target, p)
		refused(t, dir, p)
	})
	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file to another user")
		}
		dir := prepare(t)
		p := filepath.Join(dir, "private_key_ed25519.pem")
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		refused(t, dir, p)
		os.Chown(p, 0, 0)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		refused(t, dir, dir)
	})
}

func TestCrashBeforeRenameKeepsOldState(t *testing.T) {
	dir := t.TempDir()
	s, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	priv := newKeys(t)
	if _, err := s.Create(id, priv, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.KeyPath(keys.Ed25519, false))
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
	after, _ := os.ReadFile(s.KeyPath(keys.Ed25519, false))
	if !bytes.Equal(before, after) {
		t.Fatal("key file changed")
	}
	rec, _ := s.Record()
	got, err := s.Load(rec, nil)
	if err != nil || !got[keys.Ed25519].Public().Equal(priv[keys.Ed25519].Public()) {
		t.Fatalf("key not reloaded intact: %v", err)
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
	rec, err := s.Create(id, newKeys(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.KeyPath(keys.Secp256k1, false), []byte("garbage"), 0o600)
	if _, err := s.Load(rec, nil); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged key: %v", err)
	}
	// The damaged file is not silently replaced.
	if b, _ := os.ReadFile(s.KeyPath(keys.Secp256k1, false)); string(b) != "garbage" {
		t.Fatal("damaged key was overwritten")
	}
}

// Retiring moves keys, last quotes and the record into history, naming
// both identities; orphan key files (no record) retire the same way.
func TestRetire(t *testing.T) {
	dir := t.TempDir()
	s, _ := keystore.Open(dir)
	defer s.Close()
	rec, err := s.Create(id, newKeys(t), fixedSealer{3})
	if err != nil {
		t.Fatal(err)
	}
	s.SaveQuote(keys.Ed25519, []byte("quote\n"))
	now := keystore.Identity{TEE: "sim-tdx", Fields: map[string]string{"mr_td": "aa", "rtmr3": "ff"}}
	hist, err := s.Retire(rec, now, "test")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Record(); r != nil {
		t.Fatal("the record stayed")
	}
	for _, n := range []string{"private_key_ed25519.sealed", "private_key_secp256k1.sealed", keystore.QuoteFile(keys.Ed25519), keystore.RecordFile, "retired.json"} {
		if _, err := os.Stat(filepath.Join(hist, n)); err != nil {
			t.Fatalf("history lacks %s: %v", n, err)
		}
	}
	if orphans := s.Orphans(); len(orphans) != 0 {
		t.Fatalf("left behind: %v", orphans)
	}
	// retired.json names the old identity and its public keys beside the
	// new identity and the reason.
	data, err := os.ReadFile(filepath.Join(hist, "retired.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ret keystore.Retirement
	if err := json.Unmarshal(data, &ret); err != nil {
		t.Fatal(err)
	}
	if ret.Old == nil || !ret.Old.Equal(id) || !ret.New.Equal(now) || ret.Reason != "test" || len(ret.PublicKeys) != 2 || ret.PublicKeys[keys.Ed25519] != rec.PublicKeys[keys.Ed25519] {
		t.Fatalf("retired.json: %s", data)
	}
	// The state directory, history included, still passes its own checks.
	s.Close()
	s2, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
}
