package cli_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/testutil"
)

// Under systemd (Type=notify), teesign says READY=1 only once every mounted
// file is written and the server answers, and STOPPING=1 on its way out.
func TestSystemdReadiness(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(composeYAML), 0o644)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "serve", "--compose", filepath.Join(dir, "docker-compose.yaml"), "--state", filepath.Join(dir, "state"), "--tee", "sim-tdx", "--listen", addr)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var log testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	read := func() string {
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, log.String())
		}
		return string(buf[:n])
	}
	if msg := read(); msg != "READY=1" {
		t.Fatalf("first notification %q", msg)
	}
	// At READY every file the compose file mounts is there, and the
	// server answers.
	for _, f := range []string{"docker_public_key_secp256k1.pem", "docker_attestation_secp256k1.txt", "docker_public_key_ed25519.pem", "docker_attestation_ed25519.txt"} {
		if _, err := os.Stat(filepath.Join(dir, "crypto", f)); err != nil {
			t.Errorf("at READY: %v", err)
		}
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("at READY the server does not answer: %v", err)
	}
	resp.Body.Close()
	cmd.Process.Signal(os.Interrupt)
	if msg := read(); msg != "STOPPING=1" {
		t.Fatalf("notification on stop %q", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log.String())
	}
}

// The example unit is one systemd accepts, with nothing that must exist
// before the first start: the state directory is systemd's to make, and
// read-write paths are optional.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED: systemd-analyze is not installed: the unit file is not checked")
	}
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "examples", "systemd", "teesign.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{"Type=notify", "StateDirectory=teesign", "StateDirectoryMode=0700", "RequiresMountsFor=/var/lib/teesign"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	for _, line := range strings.Split(unit, "\n") {
		if strings.HasPrefix(line, "ReadWritePaths=") {
			for _, p := range strings.Fields(strings.TrimPrefix(line, "ReadWritePaths=")) {
				if !strings.HasPrefix(p, "-") {
					t.Errorf("ReadWritePaths %s must exist before the first start (226/NAMESPACE): prefix it with -", p)
				}
			}
		}
	}
	file := filepath.Join(t.TempDir(), "teesign.service")
	os.WriteFile(file, []byte(strings.ReplaceAll(unit, "/usr/local/bin/teesign", bin)), 0o644)
	if out, err := exec.Command(analyze, "verify", file).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
