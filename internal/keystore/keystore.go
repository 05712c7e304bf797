// Package keystore keeps teesign's key pairs in a state directory, bound
// to the workload identity they were made under: one private key per
// algorithm, sealed at rest when the TEE can seal, a record of the identity
// and public keys, and the history of retired keys. It trusts nothing it
// did not make: the directory and every file in it must belong to the
// running user and be closed to everyone else, and nothing in it is opened
// through a symlink. One process holds a state directory at a time.
package keystore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/teesign/teesign/internal/atomicfile"
	"github.com/teesign/teesign/internal/keys"
)

// Files in the state directory.
const (
	// LockFile is held (flock) while a process uses the directory.
	LockFile = "teesign.lock"
	// RecordFile records the workload identity and the public keys.
	RecordFile = "keys.json"
	// HistoryDir holds retired keys, one directory per retirement.
	HistoryDir = "history"
)

// ErrInUse is returned (wrapped) by Open when another process holds the
// state directory.
var ErrInUse = errors.New("state directory is in use by another teesign process")

// Store is an open, locked state directory.
type Store struct {
	dir  string
	lock *os.File
	uid  int
}

// Open creates dir (mode 0700) if needed, checks that it and everything
// in it belong to the running user, are closed to group and others and
// are not symlinks, takes its exclusive lock and removes temporary files a
// crash left behind. It fails with ErrInUse when another process has it
// open. Close releases the lock.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open state directory: no path given (use --state DIR)")
	}
	uid := os.Geteuid()
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("open state directory: %w", err)
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open state directory: %w", err)
		}
		if fi, err = os.Lstat(dir); err != nil {
			return nil, fmt.Errorf("open state directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	if err := tightenEmpty(dir, fi, uid); err != nil {
		return nil, err
	}
	if fi, err = os.Lstat(dir); err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	if err := trusted(dir, fi, uid, true); err != nil {
		return nil, err
	}
	lf, err := openNoFollow(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state directory: lock %s: %w (a symlink is refused)", filepath.Join(dir, LockFile), err)
	}
	if lfi, err := lf.Stat(); err != nil || trusted(lf.Name(), lfi, uid, false) != nil {
		lf.Close()
		if err == nil {
			err = trusted(lf.Name(), lfi, uid, false)
		}
		return nil, err
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (stop the other process first)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("open state directory: lock: %w", err)
	}
	s := &Store{dir: dir, lock: lf, uid: uid}
	if err := s.checkTree(); err != nil {
		lf.Close()
		return nil, err
	}
	if err := atomicfile.CleanTemps(dir); err != nil {
		lf.Close()
		return nil, err
	}
	return s, nil
}

// tightenEmpty gives an empty directory of the running user's mode 0700
// (mkdir makes 0755): with nothing in it there is nothing to distrust.
func tightenEmpty(dir string, fi fs.FileInfo, uid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) > 0 {
		return nil
	}
	return os.Chmod(dir, 0o700)
}

// trusted checks one entry of the state directory: not a symlink, of the
// right type, owned by uid, and with no group or other permission bits.
func trusted(path string, fi fs.FileInfo, uid int, wantDir bool) error {
	fix := "; teesign loads nothing it did not make: fix the ownership or mode, or remove it"
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("state: %s is a symlink%s", path, fix)
	case wantDir && !fi.IsDir():
		return fmt.Errorf("state: %s is not a directory%s", path, fix)
	case !wantDir && !fi.Mode().IsRegular():
		return fmt.Errorf("state: %s is not a regular file%s", path, fix)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		return fmt.Errorf("state: %s is owned by uid %d, not by the running user (uid %d)%s", path, st.Uid, uid, fix)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		want := fs.FileMode(0o600)
		if wantDir {
			want = 0o700
		}
		return fmt.Errorf("state: %s has mode %04o, open to group or others (want %04o)%s", path, fi.Mode().Perm(), want, fix)
	}
	return nil
}

// checkTree checks every entry under the state directory.
func (s *Store) checkTree() error {
	return filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		if path == s.dir || strings.HasPrefix(d.Name(), atomicfile.TempPrefix) {
			return nil
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		return trusted(path, fi, s.uid, d.IsDir())
	})
}

func openNoFollow(path string, flag int, mode fs.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|syscall.O_NOFOLLOW, mode)
}

// readFile reads a file of the state directory without following a
// symlink, checking its owner and mode.
func (s *Store) readFile(name string) ([]byte, error) {
	f, err := openNoFollow(filepath.Join(s.dir, name), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := trusted(f.Name(), fi, s.uid, false); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// Dir returns the state directory's path.
func (s *Store) Dir() string { return s.dir }

// Close releases the lock.
func (s *Store) Close() error { return s.lock.Close() }

// Identity is the measured workload keys belong to: the TEE and the
// measurements that name the workload (TDX: mr_td, rtmr0-3; SEV-SNP:
// measurement, host_data, family_id, image_id), as lowercase hex.
type Identity struct {
	TEE    string            `json:"tee"`
	Fields map[string]string `json:"fields"`
}

// Equal reports whether two identities are the same workload.
func (a Identity) Equal(b Identity) bool {
	if a.TEE != b.TEE || len(a.Fields) != len(b.Fields) {
		return false
	}
	for k, v := range a.Fields {
		if b.Fields[k] != v {
			return false
		}
	}
	return true
}

// String names the identity in one line, fields sorted.
func (a Identity) String() string {
	names := make([]string, 0, len(a.Fields))
	for k := range a.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := []string{a.TEE}
	for _, n := range names {
		parts = append(parts, n+"="+a.Fields[n])
	}
	return strings.Join(parts, " ")
}

// Diff names the fields that differ between two identities.
func (a Identity) Diff(b Identity) []string {
	var out []string
	if a.TEE != b.TEE {
		out = append(out, "tee")
	}
	seen := map[string]bool{}
	for k, v := range a.Fields {
		seen[k] = true
		if b.Fields[k] != v {
			out = append(out, k)
		}
	}
	for k := range b.Fields {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Record is what the state directory records with its keys.
type Record struct {
	Version int `json:"version"`
	// Identity is the workload the keys were made under.
	Identity Identity `json:"identity"`
	// Created is when the keys were made.
	Created time.Time `json:"created"`
	// Sealed says the private keys are sealed, with SealParams (the
	// sealer's parameters, such as the TCB version mixed into the key).
	Sealed     bool   `json:"sealed"`
	SealParams []byte `json:"seal_params,omitempty"`
	// PublicKeys are the public keys, PEM, by algorithm.
	PublicKeys map[keys.Alg]string `json:"public_keys"`
}

// Record returns the recorded keys' record, or nil when there is none.
func (s *Store) Record() (*Record, error) {
	data, err := s.readFile(RecordFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil || r.Version != 1 || len(r.PublicKeys) != len(keys.Algs()) {
		return nil, fmt.Errorf("state: %s is damaged or from another version (restore it, or move the state directory away to start with new keys)", filepath.Join(s.dir, RecordFile))
	}
	return &r, nil
}

// keyFile returns the private key file name of alg.
func keyFile(alg keys.Alg, sealed bool) string {
	if sealed {
		return "private_key_" + string(alg) + ".sealed"
	}
	return "private_key_" + string(alg) + ".pem"
}

// KeyPath returns where the private key of alg is kept, sealed or not.
func (s *Store) KeyPath(alg keys.Alg, sealed bool) string {
	return filepath.Join(s.dir, keyFile(alg, sealed))
}

// Orphans lists private key files with no record: keys of an earlier
// teesign version, which recorded no workload identity, or of a crash
// between making keys and recording them.
func (s *Store) Orphans() []string {
	var out []string
	for _, alg := range keys.Algs() {
		for _, sealed := range []bool{false, true} {
			if _, err := os.Lstat(s.KeyPath(alg, sealed)); err == nil {
				out = append(out, keyFile(alg, sealed))
			}
		}
	}
	return out
}

// Load opens the recorded private keys: unsealed with sealer's key for the
// recorded parameters when they are sealed. A key that cannot be read or
// opened is an error that says what differs, and nothing is overwritten.
func (s *Store) Load(r *Record, sealer Sealer) (map[keys.Alg]*keys.PrivateKey, error) {
	var sealKey []byte
	if r.Sealed {
		if sealer == nil {
			return nil, fmt.Errorf("state: the keys in %s are sealed, and this TEE (%s) cannot unseal them: they belong to another kind of machine", s.dir, r.Identity.TEE)
		}
		k, err := sealer.SealingKey(r.SealParams)
		if err != nil {
			return nil, fmt.Errorf("state: derive the sealing key: %w", err)
		}
		sealKey = k
	}
	out := map[keys.Alg]*keys.PrivateKey{}
	for _, alg := range keys.Algs() {
		name := keyFile(alg, r.Sealed)
		data, err := s.readFile(name)
		if err != nil {
			return nil, fmt.Errorf("state: load %s key: %w", alg, err)
		}
		if r.Sealed {
			if data, err = unseal(sealKey, alg, r.Identity, data); err != nil {
				return nil, fmt.Errorf("state: %s cannot be opened under the identity it records (%s): %w; it was sealed on another chip or under another measurement, or the file is damaged. Nothing was changed: restore the state directory, or move it away to start with new keys", filepath.Join(s.dir, name), r.Identity, err)
			}
		}
		k, err := keys.ParsePrivateKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("state: load %s (the state directory is damaged; restore it or move it away): %w", filepath.Join(s.dir, name), err)
		}
		if k.Alg() != alg || string(k.Public().MarshalPEM()) != r.PublicKeys[alg] {
			return nil, fmt.Errorf("state: %s does not hold the %s key its record names (the state directory is damaged)", filepath.Join(s.dir, name), alg)
		}
		out[alg] = k
	}
	return out, nil
}

// Create records new keys for identity: it writes each private key
// (sealed when sealer is not nil) and then the record, atomically each.
func (s *Store) Create(id Identity, priv map[keys.Alg]*keys.PrivateKey, sealer Sealer) (*Record, error) {
	r := &Record{Version: 1, Identity: id, Created: time.Now().UTC(), Sealed: sealer != nil, PublicKeys: map[keys.Alg]string{}}
	if sealer != nil {
		p, err := sealer.SealParams()
		if err != nil {
			return nil, fmt.Errorf("state: sealing parameters: %w", err)
		}
		r.SealParams = p
	}
	if err := s.writeKeys(r, priv, sealer); err != nil {
		return nil, err
	}
	return r, s.writeRecord(r)
}

// Rebind records a new identity for the recorded keys, sealing them again
// under it (--keep-keys-across-updates).
func (s *Store) Rebind(r *Record, id Identity, priv map[keys.Alg]*keys.PrivateKey, sealer Sealer) error {
	r.Identity = id
	if err := s.writeKeys(r, priv, sealer); err != nil {
		return err
	}
	return s.writeRecord(r)
}

func (s *Store) writeKeys(r *Record, priv map[keys.Alg]*keys.PrivateKey, sealer Sealer) error {
	var sealKey []byte
	if r.Sealed {
		var err error
		if sealKey, err = sealer.SealingKey(r.SealParams); err != nil {
			return fmt.Errorf("state: derive the sealing key: %w", err)
		}
	}
	for _, alg := range keys.Algs() {
		k := priv[alg]
		if k == nil || k.Alg() != alg {
			return fmt.Errorf("state: no %s key to record", alg)
		}
		data := k.MarshalPEM()
		if r.Sealed {
			var err error
			if data, err = seal(sealKey, alg, r.Identity, data); err != nil {
				return err
			}
		}
		if err := atomicfile.Write(s.KeyPath(alg, r.Sealed), data, 0o600); err != nil {
			return fmt.Errorf("state: save %s key: %w", alg, err)
		}
		r.PublicKeys[alg] = string(k.Public().MarshalPEM())
	}
	return nil
}

func (s *Store) writeRecord(r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.dir, RecordFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("state: record keys: %w", err)
	}
	return nil
}

// QuoteFile is where the last quote binding alg's key is kept.
func QuoteFile(alg keys.Alg) string { return "last_quote_" + string(alg) + ".txt" }

// SaveQuote keeps the last quote of alg's key (moved to history with the
// key when it is retired).
func (s *Store) SaveQuote(alg keys.Alg, text []byte) error {
	_, err := atomicfile.WriteIfChanged(filepath.Join(s.dir, QuoteFile(alg)), text, 0o600)
	return err
}

// Retirement is what history/<time>/retired.json says.
type Retirement struct {
	Time        time.Time           `json:"time"`
	Reason      string              `json:"reason"`
	Old         *Identity           `json:"old_identity,omitempty"`
	New         Identity            `json:"new_identity"`
	PublicKeys  map[keys.Alg]string `json:"public_keys,omitempty"`
	MovedFiles  []string            `json:"moved_files"`
	SealedFiles bool                `json:"sealed_files_moved_unopened"`
}

// Retire moves the recorded keys (sealed files unopened), their last
// quotes and record, or orphan key files when r is nil, into a new
// directory under history/, with retired.json naming both identities. It
// returns that directory.
func (s *Store) Retire(r *Record, now Identity, reason string) (string, error) {
	t := time.Now().UTC()
	hist := filepath.Join(s.dir, HistoryDir)
	if err := os.Mkdir(hist, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("state: history: %w", err)
	}
	dst := filepath.Join(hist, t.Format("20060102T150405.000000000Z"))
	if err := os.Mkdir(dst, 0o700); err != nil {
		return "", fmt.Errorf("state: history: %w", err)
	}
	ret := Retirement{Time: t, Reason: reason, New: now}
	if r != nil {
		ret.Old, ret.PublicKeys, ret.SealedFiles = &r.Identity, r.PublicKeys, r.Sealed
	}
	var names []string
	for _, alg := range keys.Algs() {
		names = append(names, keyFile(alg, false), keyFile(alg, true), QuoteFile(alg))
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(s.dir, n)); err == nil {
			ret.MovedFiles = append(ret.MovedFiles, n)
		}
	}
	data, err := json.MarshalIndent(ret, "", "  ")
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(filepath.Join(dst, "retired.json"), append(data, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("state: history: %w", err)
	}
	// The record goes last: a crash before it leaves the keys recorded,
	// and the next start retires whatever is left.
	for _, n := range append(ret.MovedFiles, RecordFile) {
		if err := os.Rename(filepath.Join(s.dir, n), filepath.Join(dst, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("state: retire %s: %w", n, err)
		}
	}
	if err := atomicfile.SyncDir(dst); err != nil {
		return "", err
	}
	return dst, atomicfile.SyncDir(s.dir)
}
