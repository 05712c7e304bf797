package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/testutil"
)

// A bundle round-trips through the command line: `teesign sign --bundle`
// writes it, `teesign verify --bundle` checks it, for both key types and
// the Ethereum formats; the bundle matches the schema; a changed signature
// byte fails the signature check; a bundle whose key type disagrees with
// its key is refused with a clear error; the workload must still be pinned.
func TestBundleRoundTrip(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "docker-compose.yaml")
	os.WriteFile(compose, []byte(composeYAML), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stop := serve(t, dir, addr)
	defer stop()
	root := filepath.Join(dir, "state", "sim-root.pem")
	registry := filepath.Join(dir, "state", "sim-registry")
	cases := []struct{ keyType, format, payload string }{
		{"secp256k1", "der", "hello"},
		{"ed25519", "der", "hello"},
		{"secp256k1", "eth_personal_sign", "hello"},
		{"secp256k1", "eth_raw", "0x" + strings.Repeat("5a", 32)},
	}
	for _, c := range cases {
		name := c.keyType + "-" + c.format
		file := filepath.Join(dir, name+".json")
		sig := strings.TrimSpace(string(testutil.Run(t, bin, "sign", "--server", "http://"+addr, "--key-type", c.keyType, "--format", c.format, "--bundle", file, c.payload)))
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		testutil.CheckBundleSchema(t, data)
		var b map[string]any
		json.Unmarshal(data, &b)
		if b["signature_format"] != c.format || b["key_type"] != c.keyType || b["tee"] != "tdx" {
			t.Fatalf("%s: bundle %s", name, data)
		}
		if c.format != "der" && !strings.HasPrefix(sig, "0x") {
			t.Fatalf("%s: printed signature %q", name, sig)
		}
		out := testutil.Run(t, bin, "verify", "--bundle", file, "--trust-root", root, "--offline", "--compose", compose, "--registry", registry)
		if !strings.Contains(string(out), `"valid": true`) {
			t.Fatalf("%s: %s", name, out)
		}
		// Nothing pinned: invalid, exit 1.
		if out, err := testutil.RunErr(bin, "verify", "--bundle", file, "--trust-root", root, "--offline"); exitCode(err) != 1 || !strings.Contains(string(out), "workload_pinned") {
			t.Fatalf("%s unpinned: exit %d %s", name, exitCode(err), out)
		}
		// One signature byte changed: the signature check fails, the rest pass.
		sigBytes := b["signature"].(string)
		flipped := []byte(sigBytes)
		flipped[8] = map[bool]byte{true: 'B', false: 'A'}[flipped[8] == 'A']
		b["signature"] = string(flipped)
		bad, _ := json.Marshal(b)
		badFile := testutil.WriteFile(t, name+"-bad.json", bad)
		out, err = testutil.RunErr(bin, "verify", "--bundle", badFile, "--trust-root", root, "--offline", "--any-workload")
		var res struct {
			Valid  bool
			Checks []struct{ Name, Status string }
		}
		json.Unmarshal(out, &res)
		st := map[string]string{}
		for _, ch := range res.Checks {
			st[ch.Name] = ch.Status
		}
		if exitCode(err) != 1 || res.Valid || st["signature"] != "fail" || st["quote_signature"] != "pass" || st["key_binding"] != "pass" {
			t.Fatalf("%s with a changed signature: exit %d %s", name, exitCode(err), out)
		}
		b["signature"] = sigBytes
	}
	// A bundle whose key type disagrees with its public key.
	data, _ := os.ReadFile(filepath.Join(dir, "ed25519-der.json"))
	mixed := testutil.WriteFile(t, "mixed.json", []byte(strings.Replace(string(data), `"key_type": "ed25519"`, `"key_type": "secp256k1"`, 1)))
	out, err := testutil.RunErr(bin, "verify", "--bundle", mixed, "--trust-root", root, "--offline", "--any-workload")
	if exitCode(err) != 1 || !strings.Contains(string(out), "key_type says secp256k1 but public_key is an ed25519 key") {
		t.Fatalf("mixed key types: exit %d %s", exitCode(err), out)
	}
	// --bundle with --quote is a usage error.
	if _, err := testutil.RunErr(bin, "verify", "--bundle", mixed, "--quote", mixed, "--any-workload"); exitCode(err) != 2 {
		t.Fatalf("--bundle with --quote: exit %d", exitCode(err))
	}
}

// A directory of bundles verifies in one run: each quote is checked once,
// every bundle gets its result, and the exit code says whether all are
// valid.
func TestVerifyDirectoryOfBundles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(composeYAML), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	stop := serve(t, dir, addr)
	defer stop()
	root := filepath.Join(dir, "state", "sim-root.pem")
	bundles := filepath.Join(dir, "bundles")
	os.Mkdir(bundles, 0o755)
	for i, keyType := range []string{"ed25519", "ed25519", "ed25519", "secp256k1", "secp256k1"} {
		testutil.Run(t, bin, "sign", "--server", "http://"+addr, "--key-type", keyType, "--bundle", filepath.Join(bundles, fmt.Sprintf("%d.json", i)), fmt.Sprintf("message %d", i))
	}
	// One of them tampered: a different message under the same signature.
	data, _ := os.ReadFile(filepath.Join(bundles, "1.json"))
	var b map[string]any
	json.Unmarshal(data, &b)
	b["message"] = "b3RoZXI="
	bad, _ := json.Marshal(b)
	os.WriteFile(filepath.Join(bundles, "9-bad.json"), bad, 0o644)
	var out struct {
		Valid         bool
		Bundles       int
		ValidBundles  int   `json:"valid_bundles"`
		QuotesChecked int64 `json:"quotes_checked"`
		Reused        int64 `json:"verdicts_reused"`
		Results       []struct {
			File  string
			Valid bool
		}
	}
	stdout, err := testutil.RunErr(bin, "verify", "--bundle", bundles, "--trust-root", root, "--offline", "--any-workload")
	if err := json.Unmarshal(stdout[:strings.LastIndex(string(stdout), "}")+1], &out); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if exitCode(err) != 1 || out.Valid || out.Bundles != 6 || out.ValidBundles != 5 || out.QuotesChecked != 2 || out.Reused != 4 {
		t.Fatalf("exit %d: %s", exitCode(err), stdout)
	}
	for _, r := range out.Results {
		if r.Valid == strings.HasSuffix(r.File, "9-bad.json") {
			t.Errorf("%s: valid %v", r.File, r.Valid)
		}
	}
	os.Remove(filepath.Join(bundles, "9-bad.json"))
	stdout = testutil.Run(t, bin, "verify", "--bundle", bundles, "--trust-root", root, "--offline", "--any-workload")
	if !strings.Contains(string(stdout), `"valid_bundles": 5`) {
		t.Fatalf("%s", stdout)
	}
}
