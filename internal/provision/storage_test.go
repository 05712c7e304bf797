package provision

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A RAM file system is told apart from a disk.
func TestStateStorage(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err == nil {
		if got, err := stateStorage("/dev/shm"); err != nil || got != storageRAM {
			t.Errorf("/dev/shm: %q %v, want %q", got, err, storageRAM)
		}
	}
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	got, err := stateStorage(dir)
	if err != nil || (fs.Type != unix.TMPFS_MAGIC && fs.Type != unix.RAMFS_MAGIC && got == storageRAM) {
		t.Fatalf("temp dir on file system %x: %q %v", fs.Type, got, err)
	}
	if _, err := stateStorage("/nonexistent"); err == nil {
		t.Error("a missing directory has no storage")
	}
}

// dm-crypt is found at any depth below the file system's device: the
// device itself, through LVM (slaves), through a partition (its disk);
// other device-mapper targets and plain disks are not encrypted.
func TestEncryptedDevices(t *testing.T) {
	sys := t.TempDir()
	dev := func(path string, uuid string, slaves ...string) string {
		d := filepath.Join(sys, path)
		os.MkdirAll(filepath.Join(d, "slaves"), 0o755)
		if uuid != "" {
			os.MkdirAll(filepath.Join(d, "dm"), 0o755)
			os.WriteFile(filepath.Join(d, "dm", "uuid"), []byte(uuid+"\n"), 0o644)
		}
		for _, s := range slaves {
			os.WriteFile(filepath.Join(d, "slaves", s), nil, 0o644)
		}
		return d
	}
	crypt := dev("class/block/dm-0", "CRYPT-LUKS2-0123-root")
	lvm := dev("class/block/dm-1", "LVM-abc", "dm-0")
	plainLVM := dev("class/block/dm-2", "LVM-def", "sda")
	dev("class/block/sda", "")
	disk := dev("devices/vda", "", "dm-0") // a disk whose slave is dm-crypt (a test shape)
	part := filepath.Join(disk, "vda1")
	os.MkdirAll(part, 0o755)
	os.WriteFile(filepath.Join(part, "partition"), []byte("1\n"), 0o644)
	plain := dev("class/block/vdb", "")
	for name, c := range map[string]struct {
		dev  string
		want bool
	}{
		"dm-crypt":                {crypt, true},
		"LVM on dm-crypt":         {lvm, true},
		"LVM on a plain disk":     {plainLVM, false},
		"a partition of its disk": {part, true},
		"a plain disk":            {plain, false},
		"no such device":          {filepath.Join(sys, "nonexistent"), false},
		"CRYPT- only as a prefix": {dev("class/block/dm-3", "LVM-CRYPT-x"), false},
	} {
		if got := encrypted(sys, c.dev, 0); got != c.want {
			t.Errorf("%s: encrypted %v, want %v", name, got, c.want)
		}
	}
	// A chain of 8 devices is followed; deeper is not (a loop guard).
	prev := "dm-0"
	for i := 10; i < 18; i++ {
		name := "dm-" + string(rune('a'+i-10))
		dev("class/block/"+name, "LVM-x", prev)
		prev = name
	}
	if !encrypted(sys, filepath.Join(sys, "class/block/dm-g"), 0) {
		t.Error("7 devices above dm-crypt: not found")
	}
	if encrypted(sys, filepath.Join(sys, "class/block/dm-h"), 0) {
		t.Error("8 devices above dm-crypt: found past the depth bound")
	}
	// The same bound holds going up from partitions to their disk.
	p := dev("devices/dm-9", "CRYPT-LUKS2-nested")
	var parts []string
	for i := 1; i <= 8; i++ {
		p = filepath.Join(p, "p"+string(rune('0'+i)))
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "partition"), []byte("1\n"), 0o644)
		parts = append(parts, p)
	}
	if !encrypted(sys, parts[6], 0) {
		t.Error("7 partitions above dm-crypt: not found")
	}
	if encrypted(sys, parts[7], 0) {
		t.Error("8 partitions above dm-crypt: found past the depth bound")
	}
}
