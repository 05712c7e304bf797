// Package testutil finds the external tools teesign's interop tests call
// (OpenSSL, a Python with `cryptography` and `requests`) and runs them.
package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tool returns the path of a command the tests need. A missing tool skips
// the test with a message, but fails it under CI (TEESIGN_CI=1), where
// .ci/run installs every one of them.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, fmt.Sprintf("%s is needed by this test and is not installed (run `bash .ci/run`, which installs it): %v", name, err))
	}
	return p
}

// Missing skips t for want of an interop tool, or fails it under CI
// (TEESIGN_CI=1), which must run every test.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("TEESIGN_CI") == "1" {
		t.Fatal(why)
	}
	t.Skip("SKIPPED: " + why)
}

var findPython = sync.OnceValue(func() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import cryptography, requests").Run() == nil {
			return path
		}
	}
	return ""
})

// Python returns a python3 that can import cryptography and requests.
func Python(t testing.TB) string {
	t.Helper()
	p := findPython()
	if p == "" {
		Missing(t, "no python3 with the cryptography and requests modules (Debian: apt-get install python3-cryptography python3-requests; .ci/run does this)")
	}
	return p
}

// Run runs a command and returns its standard output, failing the test with
// its output when it exits non-zero.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, both bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, &both)
	cmd.Stderr = &both
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, both.Bytes())
	}
	return stdout.Bytes()
}

// RunErr runs a command and returns its combined output and error.
func RunErr(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// WriteFile writes data to a new file in t's temporary directory.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// RepoRoot returns the root of the teesign module.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// SampleDir returns testdata/secretvm-sample: the real SecretVM quote and
// key pair that teesign must verify (copied from ../shared/testdata).
func SampleDir() string {
	return filepath.Join(RepoRoot(), "testdata", "secretvm-sample")
}

// SampleFile reads a file of the SecretVM sample.
func SampleFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(SampleDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// EvidenceDir returns testdata/public-evidence: real TDX and SEV-SNP
// evidence from public repositories, each with its source in README.md.
func EvidenceDir() string {
	return filepath.Join(RepoRoot(), "testdata", "public-evidence")
}

// Evidence reads a file of testdata/public-evidence.
func Evidence(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(EvidenceDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BuildTeesign builds the teesign binary into dir and returns its path.
func BuildTeesign(dir string) (string, error) {
	bin := filepath.Join(dir, "teesign")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/teesign")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build teesign: %v\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address whose port is free now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for a process's output and a reader.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Daemon is a long-running teesign command started by Start.
type Daemon struct {
	Cmd *exec.Cmd
	// Log holds its standard output and standard error.
	Log     *SyncBuffer
	once    sync.Once
	stopErr error
}

// Stop sends SIGINT and waits up to 15 s for a clean exit (then kills).
// It may be called more than once.
func (d *Daemon) Stop() error {
	d.once.Do(func() {
		d.Cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- d.Cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				d.stopErr = fmt.Errorf("%v exited with %v:\n%s", d.Cmd.Args, err, d.Log.String())
			}
		case <-time.After(15 * time.Second):
			d.Cmd.Process.Kill()
			d.stopErr = fmt.Errorf("%v did not stop on SIGINT within 15 s", d.Cmd.Args)
		}
	})
	return d.stopErr
}

// Start runs a teesign command until the test ends and waits for it to
// print "listening on". At the end of the test it is stopped with SIGINT
// and must exit within 15 s; lines are echoed to echo when not nil.
func Start(t testing.TB, bin string, echo func(line string), args ...string) *Daemon {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Cmd: cmd, Log: &SyncBuffer{}}
	cmd.Stderr = d.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			d.Log.Write([]byte(sc.Text() + "\n"))
			if echo != nil {
				echo(sc.Text())
			}
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v did not start:\n%s", args, d.Log.String())
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// MainWithTeesign is a TestMain body: it builds teesign into a temporary
// folder, stores its path in *bin, runs the tests and exits.
func MainWithTeesign(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "teesign-bin-")
	if err != nil {
		panic(err)
	}
	if *bin, err = BuildTeesign(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ComposeYAML is a compose file whose service mounts the public key and
// the attestation of both algorithms from ./crypto, the reference
// document's shape.
const ComposeYAML = `services:
  app:
    image: app
    volumes:
      - ./crypto/docker_public_key_secp256k1.pem:/app/data/pubkey_secp256k1.pem
      - ./crypto/docker_attestation_secp256k1.txt:/app/data/quote_secp256k1.txt
      - ./crypto/docker_public_key_ed25519.pem:/app/data/pubkey.pem
      - ./crypto/docker_attestation_ed25519.txt:/app/data/quote.txt
`
