// Package hardening attacks a running teesign: bad input, slow and idle
// clients, kill -9 during provisioning, a full or read-only disk, and
// sustained load. docs/reliability.md reports what it measured.
package hardening

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/testutil"
)

var bin string

func TestMain(m *testing.M) { testutil.MainWithTeesign(m, &bin) }

const composeYAML = testutil.ComposeYAML

func writeCompose(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "docker-compose.yaml")
	if err := os.WriteFile(p, []byte(composeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

// daemon is a running `teesign serve`.
type daemon struct {
	addr string
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
	dir  string
}

func startServe(t *testing.T, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	compose := writeCompose(t, dir)
	addr := freeAddr(t)
	args := append([]string{"serve", "--compose", compose, "--state", filepath.Join(dir, "state"), "--tee", "sim-tdx", "--listen", addr, "--log-level", "debug"}, extra...)
	d := testutil.Start(t, bin, nil, args...)
	return &daemon{addr: addr, cmd: d.Cmd, log: d.Log, dir: dir}
}

// rssKiB reads the daemon's resident memory.
func (d *daemon) rssKiB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
