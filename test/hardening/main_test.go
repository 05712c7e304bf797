// Package hardening attacks a running teesign: bad input, slow and idle
// clients, kill -9 during provisioning, a full or read-only disk, and
// sustained load. docs/reliability.md reports what it measured.
package hardening

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "teesign-hardening-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "teesign")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/teesign").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const composeYAML = `services:
  app:
    image: app
    volumes:
      - ./crypto/docker_public_key_secp256k1.pem:/k1.pem
      - ./crypto/docker_attestation_secp256k1.txt:/q1.txt
      - ./crypto/docker_public_key_ed25519.pem:/k2.pem
      - ./crypto/docker_attestation_ed25519.txt:/q2.txt
`

func writeCompose(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "docker-compose.yaml")
	if err := os.WriteFile(p, []byte(composeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer collects a process's log safely.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a running `teesign serve`.
type daemon struct {
	addr string
	cmd  *exec.Cmd
	log  *syncBuffer
	dir  string
}

func startServe(t *testing.T, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	compose := writeCompose(t, dir)
	addr := freeAddr(t)
	args := append([]string{"serve", "--compose", compose, "--state", filepath.Join(dir, "state"), "--tee", "sim-tdx", "--listen", addr, "--log-level", "debug"}, extra...)
	cmd := exec.Command(bin, args...)
	stdout, _ := cmd.StdoutPipe()
	d := &daemon{addr: addr, cmd: cmd, log: &syncBuffer{}, dir: dir}
	cmd.Stderr = d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.log.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not start:\n%s", d.log.String())
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Error("serve did not stop on SIGINT within 15 s")
		}
	})
	return d
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
