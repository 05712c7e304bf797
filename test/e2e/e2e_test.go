// Package e2e runs teesign the way it runs in a VM, on the machine's real
// Docker engine: provision and serve on a compose file, containers that
// read their mounted keys and quotes and sign over the bridge, host-side
// verification, and a container on another network refused.
//
// It runs when TEESIGN_E2E=1 (.ci/run sets it when a Docker engine answers).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/testutil"
)

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// output runs a command and returns its standard output alone.
func output(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// cleanup runs even when a step fails.
func cleanup(t *testing.T, name string, args ...string) {
	t.Cleanup(func() {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && !bytes.Contains(out, []byte("No such")) && !bytes.Contains(out, []byte("not found")) {
			t.Logf("cleanup %s %v: %v %s", name, args, err, out)
		}
	})
}

func composeCmd(t *testing.T) []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	t.Fatal("neither `docker compose` nor docker-compose is installed")
	return nil
}

func step(t *testing.T, format string, a ...any) {
	t.Helper()
	fmt.Printf("e2e: "+format+"\n", a...)
}

func TestDockerEndToEnd(t *testing.T) {
	if os.Getenv("TEESIGN_E2E") != "1" {
		t.Skip("set TEESIGN_E2E=1 to run the Docker end-to-end test (.ci/run does when a Docker engine answers)")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Fatalf("TEESIGN_E2E=1 but no Docker engine answers: %v", err)
	}
	root := testutil.RepoRoot()
	dir := t.TempDir()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	id := "teesign-e2e-" + hex.EncodeToString(suffix)

	// 1. Static binaries and a FROM-scratch image holding the client.
	step(t, "1. building static teesign and client, image %s", id)
	run(t, root, "go", "build", "-o", filepath.Join(dir, "teesign"), "./cmd/teesign")
	run(t, root, "go", "build", "-o", filepath.Join(dir, "image", "client"), "./test/e2e/client")
	os.WriteFile(filepath.Join(dir, "image", "Dockerfile"), []byte("FROM scratch\nCOPY client /client\nENTRYPOINT [\"/client\"]\n"), 0o644)
	cleanup(t, "docker", "rmi", "-f", id+":latest")
	run(t, dir, "docker", "build", "-q", "-t", id+":latest", filepath.Join(dir, "image"))

	// The compose project's network, made first so that the signing server
	// can listen on its bridge gateway before the containers start.
	cleanup(t, "docker", "network", "rm", id)
	run(t, dir, "docker", "network", "create", id)
	var ipam []struct{ Subnet, Gateway string }
	if err := json.Unmarshal([]byte(run(t, dir, "docker", "network", "inspect", "-f", "{{json .IPAM.Config}}", id)), &ipam); err != nil || len(ipam) == 0 {
		t.Fatalf("network %s: %v %v", id, ipam, err)
	}
	subnet, gateway := ipam[0].Subnet, ipam[0].Gateway
	listen := gateway + ":49153"
	step(t, "network %s: subnet %s, gateway %s", id, subnet, gateway)

	// 2. The compose file (the reference document's shape) and teesign serve.
	project := filepath.Join(dir, "project")
	os.MkdirAll(project, 0o755)
	composeFile := filepath.Join(project, "docker-compose.yaml")
	compose := fmt.Sprintf(`services:
  app:
    image: %s:latest
    environment:
      SIGNER_URL: http://%s
    volumes:
      - ./crypto/docker_public_key_secp256k1.pem:/app/data/pubkey_secp256k1.pem:ro
      - ./crypto/docker_attestation_secp256k1.txt:/app/data/quote_secp256k1.txt:ro
      - ./crypto/docker_public_key_ed25519.pem:/app/data/pubkey_ed25519.pem:ro
      - ./crypto/docker_attestation_ed25519.txt:/app/data/quote_ed25519.txt:ro
    networks: [signing]
networks:
  signing:
    external: true
    name: %s
`, id, listen, id)
	os.WriteFile(composeFile, []byte(compose), 0o644)
	state := filepath.Join(dir, "state")
	testutil.Start(t, filepath.Join(dir, "teesign"), func(line string) {
		fmt.Printf("e2e: 2. teesign: %s\n", strings.TrimPrefix(line, "teesign: "))
	}, "serve", "--compose", composeFile, "--state", state, "--tee", "sim-tdx", "--listen", listen, "--allow", subnet)

	// 3. docker compose up: the container signs over the bridge.
	dc := composeCmd(t)
	composeArgs := append(dc[1:], "-p", id, "-f", composeFile)
	cleanup(t, dc[0], append(composeArgs, "down", "--remove-orphans")...)
	run(t, project, dc[0], append(composeArgs, "up", "--no-color", "--abort-on-container-exit", "--exit-code-from", "app")...)
	logs := run(t, project, dc[0], append(composeArgs, "logs", "--no-color", "app")...)
	var sigs []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if i := strings.Index(line, "{"); i >= 0 {
			var m map[string]any
			if json.Unmarshal([]byte(line[i:]), &m) == nil && m["signature"] != nil {
				sigs = append(sigs, m)
				step(t, "3. container signed (%s): %s", m["key_type"], m["signature"])
			}
		}
	}
	if len(sigs) != 2 {
		t.Fatalf("want 2 signatures from the container, got %d:\n%s", len(sigs), logs)
	}

	// 4. The host verifies each signature against the mounted quote, with
	// the simulated root and a policy pinning the measurements, RTMR3
	// computed from the compose file.
	for _, s := range sigs {
		alg := s["key_type"].(string)
		policy := output(t, dir, filepath.Join(dir, "teesign"), "policy", "from-quote",
			filepath.Join(project, "crypto", "docker_attestation_"+alg+".txt"), "--compose", filepath.Join(project, "docker-compose.yaml"),
			"--registry", filepath.Join(state, "sim-registry"))
		policyFile := filepath.Join(dir, "policy-"+alg+".yaml")
		os.WriteFile(policyFile, []byte(policy), 0o644)
		out := run(t, dir, filepath.Join(dir, "teesign"), "verify", "--offline",
			"--quote", filepath.Join(project, "crypto", "docker_attestation_"+alg+".txt"),
			"--message", s["payload"].(string), "--signature", s["signature"].(string), "--key-type", alg,
			"--trust-root", filepath.Join(state, "sim-root.pem"), "--policy", policyFile)
		var res struct {
			Valid  bool
			Checks []struct{ Name, Status string }
		}
		json.Unmarshal([]byte(out), &res)
		step(t, "4. teesign verify %s: valid=%v %v", alg, res.Valid, res.Checks)
		if !res.Valid {
			t.Fatalf("host verification failed:\n%s", out)
		}
	}

	// 5. A container on a network teesign does not allow is refused.
	other := id + "-other"
	cleanup(t, "docker", "network", "rm", other)
	run(t, dir, "docker", "network", "create", other)
	cleanup(t, "docker", "rm", "-f", other+"-client")
	out := run(t, dir, "docker", "run", "--name", other+"-client", "--network", other, id+":latest", "-server", "http://"+listen, "-expect-refused")
	step(t, "5. container on network %s: %s", other, strings.TrimSpace(out))

	// 6. Teardown happens in t.Cleanup, also when a step fails.
	step(t, "6. tearing down containers, networks %s and %s, image %s", id, other, id)
}
