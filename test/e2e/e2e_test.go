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
	"net"
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

// docker0 returns the IPv4 address of the default Docker bridge.
func docker0(t *testing.T) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("docker0: %v", err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatalf("docker0 has no IPv4 address: %v", addrs)
	return ""
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

	// 2. teesign serve first, as at boot: on the docker0 address (its
	// default), with the default allow-list, before the compose project's
	// network exists. Compose creates that network at `up`; the allow-list
	// follows Docker, so the container's first request is answered.
	project := filepath.Join(dir, "project")
	os.MkdirAll(project, 0o755)
	composeFile := filepath.Join(project, "docker-compose.yaml")
	bridge := docker0(t)
	listen := bridge + ":49153"
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
`, id, listen)
	os.WriteFile(composeFile, []byte(compose), 0o644)
	state := filepath.Join(dir, "state")
	var printed string
	testutil.Start(t, filepath.Join(dir, "teesign"), func(line string) {
		fmt.Printf("e2e: 2. teesign: %s\n", strings.TrimPrefix(line, "teesign: "))
		if a, ok := strings.CutPrefix(line, "teesign: signing server listening on http://"); ok {
			printed = a
		}
	}, "serve", "--compose", composeFile, "--state", state, "--tee", "sim-tdx")
	if printed != listen {
		t.Fatalf("teesign listens on %q, not on docker0's address %s", printed, listen)
	}
	step(t, "2. teesign serve on %s, no --allow, before the project network exists", listen)

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

	// 5. With an explicit --allow, a container on another network is
	// refused (a second server, on another port, allowing only the
	// project's network).
	var projectNet string
	for _, n := range strings.Fields(output(t, dir, "docker", "network", "ls", "--filter", "label=com.docker.compose.project="+id, "--format", "{{.Name}}")) {
		projectNet = n
	}
	var ipam []struct{ Subnet string }
	if err := json.Unmarshal([]byte(run(t, dir, "docker", "network", "inspect", "-f", "{{json .IPAM.Config}}", projectNet)), &ipam); err != nil || len(ipam) == 0 {
		t.Fatalf("network %q: %v %v", projectNet, ipam, err)
	}
	strict := bridge + ":49154"
	testutil.Start(t, filepath.Join(dir, "teesign"), nil, "serve", "--compose", composeFile, "--state", filepath.Join(dir, "state-strict"), "--tee", "sim-tdx",
		"--listen", strict, "--allow", ipam[0].Subnet, "--crypto-dir", filepath.Join(dir, "crypto-strict"))
	other := id + "-other"
	cleanup(t, "docker", "network", "rm", other)
	run(t, dir, "docker", "network", "create", other)
	cleanup(t, "docker", "rm", "-f", other+"-client")
	out := run(t, dir, "docker", "run", "--name", other+"-client", "--network", other, id+":latest", "-server", "http://"+strict, "-expect-refused")
	step(t, "5. container on network %s against --allow %s: %s", other, ipam[0].Subnet, strings.TrimSpace(out))

	// 6. Teardown happens in t.Cleanup, also when a step fails.
	step(t, "6. tearing down the compose project, network %s, image %s", other, id)
}
