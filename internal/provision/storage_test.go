package provision

import (
	"os"
	"testing"
)

// A RAM file system is told apart from a disk; this machine's temporary
// directories are on no dm-crypt device.
func TestStateStorage(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err == nil {
		if got, err := stateStorage("/dev/shm"); err != nil || got != storageRAM {
			t.Errorf("/dev/shm: %q %v, want %q", got, err, storageRAM)
		}
	}
	got, err := stateStorage(t.TempDir())
	if err != nil || (got != storagePlain && got != storageRAM && got != storageEncrypted) {
		t.Fatalf("temp dir: %q %v", got, err)
	}
	if encrypted("/nonexistent", 0) {
		t.Error("a missing device is not encrypted")
	}
	if _, err := stateStorage("/nonexistent"); err == nil {
		t.Error("a missing directory has no storage")
	}
}
