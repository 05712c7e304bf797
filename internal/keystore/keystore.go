// Package keystore keeps teesign's key pairs in a state directory: one
// private key per algorithm, made on first use and reused afterwards, under
// an exclusive lock so that two processes never race on the same directory.
package keystore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/teesign/teesign/internal/atomicfile"
	"github.com/teesign/teesign/internal/keys"
)

// LockFile is the name of the lock file inside the state directory.
const LockFile = "teesign.lock"

// ErrInUse is returned (wrapped) by Open when another process holds the
// state directory.
var ErrInUse = errors.New("state directory is in use by another teesign process")

// Store is an open, locked state directory.
type Store struct {
	dir  string
	lock *os.File
}

// Open creates dir (mode 0700) if needed, takes its exclusive lock and
// removes temporary files a crash left behind. It fails with ErrInUse when
// another process has it open. Close releases the lock.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open state directory: no path given (use --state DIR)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open state directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open state directory %s: it is readable by others and chmod 0700 failed: %w", dir, err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state directory: lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (stop the other process first)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("open state directory: lock: %w", err)
	}
	if err := atomicfile.CleanTemps(dir); err != nil {
		lf.Close()
		return nil, err
	}
	return &Store{dir: dir, lock: lf}, nil
}

// Dir returns the state directory's path.
func (s *Store) Dir() string { return s.dir }

// Close releases the lock.
func (s *Store) Close() error { return s.lock.Close() }

// KeyPath returns where the private key of alg is kept.
func (s *Store) KeyPath(alg keys.Alg) string {
	return filepath.Join(s.dir, "private_key_"+string(alg)+".pem")
}

// Key returns the private key of alg, creating and saving it (mode 0600,
// atomically) when the state directory has none. created says whether it
// was made now.
func (s *Store) Key(alg keys.Alg) (k *keys.PrivateKey, created bool, err error) {
	path := s.KeyPath(alg)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := keys.ParsePrivateKeyPEM(data)
		if err != nil {
			return nil, false, fmt.Errorf("load %s (the state directory is damaged; restore it or remove the file to make a new key): %w", path, err)
		}
		if k.Alg() != alg {
			return nil, false, fmt.Errorf("load %s: holds a %s key, want %s", path, k.Alg(), alg)
		}
		return k, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("load key: %w", err)
	}
	k, err = keys.Generate(alg)
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(path, k.MarshalPEM(), 0o600); err != nil {
		return nil, false, fmt.Errorf("save new %s key: %w", alg, err)
	}
	return k, true, nil
}
