// Package cli_test runs the teesign binary as users do: provision and serve
// on a compose file, curl the reference request, check the signatures with
// OpenSSL and Python, verify with the CLI.
package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/testutil"
)

var bin string

func TestMain(m *testing.M) { testutil.MainWithTeesign(m, &bin) }

const composeYAML = testutil.ComposeYAML

// serve starts `teesign serve` on dir's compose file; the returned stop
// function sends SIGINT and checks that the logs hold no secret.
func serve(t *testing.T, dir, listen string, extra ...string) (stop func()) {
	t.Helper()
	args := append([]string{"serve", "--compose", filepath.Join(dir, "docker-compose.yaml"), "--state", filepath.Join(dir, "state"), "--tee", "sim-tdx", "--listen", listen}, extra...)
	d := testutil.Start(t, bin, nil, args...)
	return func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
		if strings.Contains(d.Log.String(), "PRIVATE KEY") || strings.Contains(d.Log.String(), "My Secret Message") {
			t.Error("the logs contain key material or a payload")
		}
	}
}

func curlSign(t *testing.T, addr, body string) map[string]string {
	t.Helper()
	// The reference document's request, as written there.
	out := testutil.Run(t, testutil.Tool(t, "curl"), "-s", "-X", "POST", addr+"/sign", "-d", body)
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("curl: %s", out)
	}
	return m
}

func TestServeCurlOpenSSLPythonVerify(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(composeYAML), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stop := serve(t, dir, addr)
	crypto := filepath.Join(dir, "crypto")

	m := curlSign(t, addr, `{"key_type": "secp256k1", "payload": "My Secret Message" }`)
	sig, err := base64.StdEncoding.DecodeString(m["signature"])
	if err != nil {
		t.Fatalf("%v: %v", m, err)
	}
	sigFile := testutil.WriteFile(t, "sig.der", sig)
	msgFile := testutil.WriteFile(t, "msg", []byte("My Secret Message"))
	testutil.Run(t, testutil.Tool(t, "openssl"), "dgst", "-sha256", "-verify", filepath.Join(crypto, "docker_public_key_secp256k1.pem"), "-signature", sigFile, msgFile)

	m2 := curlSign(t, addr, `{"key_type": "ed25519", "payload": "My Secret Message" }`)
	py := `
import base64, sys
from cryptography.hazmat.primitives import serialization
pub = serialization.load_pem_public_key(open(sys.argv[1], 'rb').read())
pub.verify(base64.b64decode(sys.argv[2]), b"My Secret Message")
print("ok")`
	if out := testutil.Run(t, testutil.Python(t), "-c", py, filepath.Join(crypto, "docker_public_key_ed25519.pem"), m2["signature"]); !bytes.Contains(out, []byte("ok")) {
		t.Fatal(string(out))
	}

	// `teesign sign` and `teesign verify` with the simulated root.
	out := testutil.Run(t, bin, "sign", "--server", "http://"+addr, "--key-type", "ed25519", "hello")
	cliSig := strings.TrimSpace(string(out))
	root := filepath.Join(dir, "state", "sim-root.pem")
	quoteFile := filepath.Join(crypto, "docker_attestation_ed25519.txt")
	// The policy of a known-good quote, with RTMR3 computed from the
	// compose file, pins the workload.
	simRegistry := filepath.Join(dir, "state", "sim-registry")
	policy := testutil.Run(t, bin, "policy", "from-quote", quoteFile, "--compose", filepath.Join(dir, "docker-compose.yaml"), "--registry", simRegistry)
	policyFile := testutil.WriteFile(t, "policy.yaml", policy)
	testutil.Run(t, bin, "verify", "--quote", quoteFile, "--message", "hello", "--signature", cliSig, "--trust-root", root, "--offline", "--pubkey", filepath.Join(crypto, "docker_public_key_ed25519.pem"), "--policy", policyFile)
	// Nothing pinned: invalid, exit 1, and the reason says what to do.
	out, err = testutil.RunErr(bin, "verify", "--quote", quoteFile, "--message", "hello", "--signature", cliSig, "--key-type", "ed25519", "--trust-root", root, "--offline")
	var unpinned struct {
		Valid  bool `json:"valid"`
		Checks []struct{ Name, Status, Reason string }
	}
	json.Unmarshal(out, &unpinned)
	if code := exitCode(err); code != 1 || unpinned.Valid || len(unpinned.Checks) != 6 {
		t.Fatalf("verify with nothing pinned: exit %d, %s", code, out)
	}
	for _, c := range unpinned.Checks {
		if c.Name == "policy" && (c.Status != "fail" || !strings.Contains(c.Reason, "--policy") || !strings.Contains(c.Reason, "--any-workload")) {
			t.Fatalf("policy check without a pin: %+v", c)
		}
	}
	// --compose against the simulated registry pins the workload as on a
	// real SecretVM; `teesign workload` says which build it is.
	out = testutil.Run(t, bin, "verify", "--quote", quoteFile, "--message", "hello", "--signature", cliSig, "--key-type", "ed25519", "--trust-root", root, "--offline",
		"--compose", filepath.Join(dir, "docker-compose.yaml"), "--registry", simRegistry)
	if !bytes.Contains(out, []byte(`"status": "authentic_match"`)) {
		t.Fatalf("verify --compose: %s", out)
	}
	other := testutil.WriteFile(t, "other-compose.yaml", append([]byte(composeYAML), '#'))
	out, err = testutil.RunErr(bin, "verify", "--quote", quoteFile, "--message", "hello", "--signature", cliSig, "--key-type", "ed25519", "--trust-root", root, "--offline",
		"--compose", other, "--registry", simRegistry)
	if exitCode(err) != 1 || !bytes.Contains(out, []byte(`"status": "authentic_mismatch"`)) {
		t.Fatalf("verify --compose with another compose file: %v %s", err, out)
	}
	out = testutil.Run(t, bin, "workload", "--quote", quoteFile, "--compose", filepath.Join(dir, "docker-compose.yaml"), "--registry", simRegistry)
	var wl map[string]string
	if err := json.Unmarshal(out, &wl); err != nil || wl["status"] != "authentic_match" || wl["tee"] != "tdx" || wl["template"] != "small" || wl["artifacts_version"] != "v0.0.0-sim" || wl["env"] != "sim" {
		t.Fatalf("teesign workload: %v %s", err, out)
	}
	if _, err = testutil.RunErr(bin, "workload", "--quote", quoteFile, "--compose", other, "--registry", simRegistry); exitCode(err) != 1 {
		t.Fatalf("teesign workload, another compose file: exit %d", exitCode(err))
	}
	if _, err = testutil.RunErr(bin, "workload", "--quote", quoteFile); exitCode(err) != 2 {
		t.Fatalf("teesign workload without --compose: exit %d", exitCode(err))
	}
	// --any-workload: exit 0, and the result says so.
	out = testutil.Run(t, bin, "verify", "--quote", quoteFile, "--message", "hello", "--signature", cliSig, "--key-type", "ed25519", "--trust-root", root, "--offline", "--any-workload")
	if !bytes.Contains(out, []byte(`"any_workload": true`)) || !bytes.Contains(out, []byte("any workload accepted")) {
		t.Fatalf("--any-workload: %s", out)
	}
	// Without the simulated root: invalid, exit 1.
	_, err = testutil.RunErr(bin, "verify", "--quote", quoteFile, "--message", "hello", "--signature", cliSig, "--key-type", "ed25519", "--offline", "--policy", policyFile)
	if code := exitCode(err); code != 1 {
		t.Fatalf("verify without --trust-root: exit %d, want 1", code)
	}
	// Usage error: exit 2.
	_, err = testutil.RunErr(bin, "verify", "--quote", quoteFile)
	if code := exitCode(err); code != 2 {
		t.Fatalf("verify with missing flags: exit %d, want 2", code)
	}

	pubBefore, _ := os.ReadFile(filepath.Join(crypto, "docker_public_key_secp256k1.pem"))
	stop()
	// Restart on the same state: the same public key, and the new quote binds it.
	stop = serve(t, dir, addr)
	defer stop()
	pubAfter, _ := os.ReadFile(filepath.Join(crypto, "docker_public_key_secp256k1.pem"))
	if !bytes.Equal(pubBefore, pubAfter) {
		t.Fatal("public key changed across a restart")
	}
	m = curlSign(t, addr, `{"key_type": "secp256k1", "payload": "after restart"}`)
	testutil.Run(t, bin, "verify", "--quote", filepath.Join(crypto, "docker_attestation_secp256k1.txt"), "--message", "after restart", "--signature", m["signature"], "--trust-root", root, "--offline", "--pubkey", filepath.Join(crypto, "docker_public_key_secp256k1.pem"), "--policy", policyFile)
	// Ethereum personal_sign through the server, recovered by the verifier.
	for i := 0; i < 5; i++ {
		payload := fmt.Sprintf("random payload %d %d", i, time.Now().UnixNano())
		m = curlSign(t, addr, `{"payload": "`+payload+`", "format": "eth_personal_sign"}`)
		out := testutil.Run(t, bin, "verify", "--quote", filepath.Join(crypto, "docker_attestation_secp256k1.txt"), "--message", payload, "--signature", m["signature"], "--format", "eth_personal_sign", "--trust-root", root, "--offline", "--policy", policyFile)
		var res struct {
			Valid           bool   `json:"valid"`
			Signer          string `json:"signer"`
			EthereumAddress string `json:"ethereum_address"`
		}
		if err := json.Unmarshal(out, &res); err != nil || !res.Valid || res.Signer != res.EthereumAddress || !strings.HasPrefix(res.Signer, "0x") {
			t.Fatalf("eth verify: %v %s", err, out)
		}
	}
	// A second serve on the same state directory is refused.
	out, err = testutil.RunErr(bin, "provision", "--compose", filepath.Join(dir, "docker-compose.yaml"), "--state", filepath.Join(dir, "state"), "--tee", "sim-tdx")
	if err == nil || !bytes.Contains(out, []byte("in use")) {
		t.Fatalf("second process on the state: %v %s", err, out)
	}
}

func TestListensOnlyWhereTold(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(composeYAML), 0o644)
	port := freePort(t)
	stop := serve(t, dir, fmt.Sprintf("127.0.0.2:%d", port))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	if c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Fatal("the server accepts connections on 127.0.0.1 although told to listen on 127.0.0.2")
	}
	c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Fatalf("not listening where told: %v", err)
	}
	c.Close()
}

func TestQuoteInspectSample(t *testing.T) {
	out := testutil.Run(t, bin, "quote", "inspect", filepath.Join(testutil.SampleDir(), "quote.txt"))
	var f map[string]any
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"mr_td": "1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e",
		"rtmr3": "aff11dd6163203574cdf6841166e6d769e27897fc55ec63c87a8f4ae200781e7dc434318114fcabda19ce1af2ef0741a",
		"xfam":  "e702060000000000", "td_attributes": "0000001000000000", "tee_tcb_svn": "07010300000000000000000000000000",
	} {
		if f[k] != v {
			t.Errorf("%s = %v, want %s", k, f[k], v)
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

func freePort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(testutil.FreeAddr(t))
	p, _ := strconv.Atoi(port)
	return p
}
