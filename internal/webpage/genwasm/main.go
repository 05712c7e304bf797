// Command genwasm builds the verifier page's WebAssembly module from
// ../wasm and writes it, gzip-compressed, with Go's loader for it
// (wasm_exec.js, from the toolchain that built it) and the toolchain's
// version, into ../static. Run it with `go generate ./internal/webpage`.
// The build is reproducible (-trimpath, no VCS stamp), so a test can check
// that the committed module matches the sources: with -check, genwasm
// writes nothing and fails unless ../static holds what it would write.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	check := flag.Bool("check", false, "write nothing; fail unless static/ holds what would be written")
	flag.Parse()
	if err := run(context.Background(), *check); err != nil {
		fmt.Fprintln(os.Stderr, "genwasm:", err)
		os.Exit(1)
	}
}

// build builds the module into out and returns the toolchain's version.
func build(ctx context.Context, pkgDir, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	v, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	return strings.TrimSpace(string(v)), err
}

// compress gzips data deterministically: no name, no time.
func compress(data []byte) ([]byte, error) {
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func run(ctx context.Context, check bool) error {
	tmp, err := os.MkdirTemp("", "genwasm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "verify.wasm")
	version, err := build(ctx, "wasm", out)
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	gz, err := compress(wasm)
	if err != nil {
		return err
	}
	root, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return err
	}
	loader, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return err
	}
	files := map[string][]byte{"verify.wasm.gz": gz, "wasm_exec.js": loader, "verify.wasm.go-version": []byte(version + "\n")}
	if check {
		for name, data := range files {
			have, err := os.ReadFile(filepath.Join("static", name))
			if err != nil || !bytes.Equal(have, data) {
				return fmt.Errorf("static/%s is not what the sources build with %s: run `go generate ./internal/webpage` and commit the result", name, version)
			}
		}
		fmt.Printf("genwasm: static/ is up to date (%s)\n", version)
		return nil
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join("static", name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("genwasm: verify.wasm %d bytes, %d gzipped, built with %s\n", len(wasm), len(gz), version)
	return nil
}
