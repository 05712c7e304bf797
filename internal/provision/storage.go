package provision

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Where the state directory's bytes live.
const (
	storageRAM       = "ram"       // tmpfs or ramfs: gone with the VM
	storageEncrypted = "encrypted" // a dm-crypt device, at any depth below the file system
	storagePlain     = "plain"     // a disk the host of a cloud VM can read
)

// stateStorage tells whether dir is on a RAM file system, on a disk
// encrypted inside the VM (dm-crypt below its block device, as LUKS or
// SecretVM's encrypted volume), or on neither.
func stateStorage(dir string) (string, error) { return storageOf(dir, "/sys") }

// storageOf is stateStorage reading sysfs at sys.
func storageOf(dir, sys string) (string, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return "", fmt.Errorf("statfs %s: %w", dir, err)
	}
	if fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC {
		return storageRAM, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", dir, err)
	}
	dev := filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if encrypted(sys, dev, 0) {
		return storageEncrypted, nil
	}
	return storagePlain, nil
}

// encrypted reports whether the block device at sysfs path dev is a
// dm-crypt device or sits on one (through LVM, RAID or partitions), at
// most 8 devices down.
func encrypted(sys, dev string, depth int) bool {
	if depth == 8 {
		return false
	}
	if uuid, err := os.ReadFile(filepath.Join(dev, "dm", "uuid")); err == nil && strings.HasPrefix(string(uuid), "CRYPT-") {
		return true
	}
	// A partition's disk is its parent directory in sysfs.
	if _, err := os.Stat(filepath.Join(dev, "partition")); err == nil {
		if real, err := filepath.EvalSymlinks(dev); err == nil && encrypted(sys, filepath.Dir(real), depth+1) {
			return true
		}
	}
	slaves, _ := os.ReadDir(filepath.Join(dev, "slaves"))
	for _, s := range slaves {
		if encrypted(sys, filepath.Join(sys, "class", "block", s.Name()), depth+1) {
			return true
		}
	}
	return false
}
