// Package testutil finds the external tools teesign's interop tests call
// (OpenSSL, a Python with `cryptography` and `requests`) and runs them.
package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Tool returns the path of a command the tests need. A missing tool fails
// the test: .ci/run installs every one of them.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed by this test and is not installed (run `bash .ci/run`, which installs it): %v", name, err)
	}
	return p
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
		t.Fatal("no python3 with the cryptography and requests modules (Debian: apt-get install python3-cryptography python3-requests; .ci/run does this)")
	}
	return p
}

// Run runs a command and returns its standard output, failing the test with
// its output when it exits non-zero.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
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
