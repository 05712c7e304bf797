package hardening

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a small tmpfs at dir (root with mount rights only).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot mount a tmpfs here (%v): the disk-full case needs root with mount rights", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

func provisionErr(t *testing.T, compose, state string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, "provision", "--compose", compose, "--state", state, "--tee", "sim-tdx").CombinedOutput()
	return string(out), err
}

func noTempFiles(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err == nil && strings.HasPrefix(fi.Name(), ".teesign-tmp-") {
				t.Errorf("half-written temp file left: %s", p)
			}
			return nil
		})
	}
}

func TestDiskFull(t *testing.T) {
	for _, size := range []string{"4k", "12k", "24k", "40k"} {
		dir := t.TempDir()
		mountTmpfs(t, dir, size)
		compose := writeCompose(t, dir)
		out, err := provisionErr(t, compose, filepath.Join(dir, "state"))
		if err == nil {
			t.Fatalf("size %s: provision succeeded on a full disk:\n%s", size, out)
		}
		if !strings.Contains(out, "no space left on device") {
			t.Errorf("size %s: the error does not say the disk is full:\n%s", size, out)
		}
		checkComplete(t, 0, dir)
		noTempFiles(t, dir)
	}
}

func TestReadOnlyState(t *testing.T) {
	dir := t.TempDir()
	compose := writeCompose(t, dir)
	state := filepath.Join(dir, "state")
	if out, err := provisionErr(t, compose, state); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := syscall.Mount(state, state, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot bind-mount here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(state, syscall.MNT_DETACH) })
	if err := syscall.Mount("", state, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("SKIPPED LOUDLY: cannot remount read-only (%v)", err)
	}
	out, err := provisionErr(t, compose, state)
	if err == nil || !strings.Contains(out, "read-only file system") {
		t.Fatalf("read-only state: %v\n%s", err, out)
	}
	checkComplete(t, 0, dir)
}

func TestBadComposeFilesWriteNothing(t *testing.T) {
	dir := t.TempDir()
	notYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(notYAML, []byte("services: [\n  this is: not: yaml\n\t{"), 0o644)
	for name, c := range map[string]struct{ file, want string }{
		"missing":  {filepath.Join(dir, "nope.yaml"), "no such file"},
		"not YAML": {notYAML, "yaml"},
	} {
		state := filepath.Join(dir, "state-"+strings.ReplaceAll(name, " ", "-"))
		out, err := provisionErr(t, c.file, state)
		if err == nil || !strings.Contains(strings.ToLower(out), c.want) {
			t.Errorf("%s compose file: %v\n%s", name, err, out)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("%s compose file: the state directory was created", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "crypto")); !os.IsNotExist(err) {
		t.Error("files were written for a bad compose file")
	}
}
