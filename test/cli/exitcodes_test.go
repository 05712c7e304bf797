package cli_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/testutil"
)

// Exit codes come from structure: 2 only for what cobra's flag, argument,
// required-flag and flag-group validation refuses; 1 for every other
// failure, invalid verdicts included; 0 for success.
func TestExitCodes(t *testing.T) {
	quote := filepath.Join(testutil.SampleDir(), "quote.txt")
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(k.Sign([]byte("m")))
	dir := t.TempDir()
	notAQuote := testutil.WriteFile(t, "not-a-quote.txt", []byte("hello"))
	badPolicy := testutil.WriteFile(t, "bad-policy.yaml", []byte("tdx:\n  mr_td: [\"aa\"]\n"))
	verify := func(extra ...string) []string {
		return append([]string{"verify", "--quote", quote, "--message", "m", "--signature", sig, "--offline"}, extra...)
	}
	for name, c := range map[string]struct {
		args []string
		code int
	}{
		"help":                           {[]string{"--help"}, 0},
		"verify valid, any workload":     {verify("--any-workload", "--key-type", "ed25519"), 0},
		"unknown command":                {[]string{"bogus"}, 2},
		"unknown subcommand":             {[]string{"quote", "bogus"}, 2},
		"unknown flag":                   {verify("--bogus"), 2},
		"bad key type":                   {verify("--key-type", "rsa"), 2},
		"bad format":                     {verify("--format", "pem"), 2},
		"bad --now":                      {verify("--now", "yesterday"), 2},
		"missing --signature":            {[]string{"verify", "--quote", quote, "--message", "m"}, 2},
		"no message":                     {[]string{"verify", "--quote", quote, "--signature", sig}, 2},
		"message and message file":       {verify("--message-file", quote), 2},
		"extra argument":                 {append(verify(), "extra"), 2},
		"inspect without a file":         {[]string{"quote", "inspect"}, 2},
		"provision without --compose":    {[]string{"provision", "--state", dir, "--tee", "sim-tdx"}, 2},
		"bad --tee":                      {[]string{"provision", "--compose", "x.yaml", "--tee", "sgx"}, 2},
		"bad --log-level":                {[]string{"provision", "--compose", "x.yaml", "--log-level", "loud"}, 2},
		"bad --allow":                    {[]string{"serve", "--compose", "x.yaml", "--allow", "10.0.0.1"}, 2},
		"bad --payload-encoding":         {[]string{"sign", "--payload-encoding", "b32", "x"}, 2},
		"verify invalid: unpinned":       {verify(), 1},
		"verify invalid: wrong key type": {verify("--any-workload", "--key-type", "secp256k1"), 1},
		"verify: no such quote file":     {[]string{"verify", "--quote", filepath.Join(dir, "none"), "--message", "m", "--signature", sig}, 1},
		"verify: signature not base64":   {verify("--any-workload", "--key-type", "ed25519", "--signature", "%%%"), 1},
		"verify: policy refused at load": {verify("--policy", badPolicy), 1},
		"verify: no such policy":         {verify("--policy", filepath.Join(dir, "none")), 1},
		"verify: not a quote":            {[]string{"verify", "--quote", notAQuote, "--message", "m", "--signature", sig, "--any-workload"}, 1},
		"inspect: no such file":          {[]string{"quote", "inspect", filepath.Join(dir, "none")}, 1},
		"inspect: not a quote":           {[]string{"quote", "inspect", notAQuote}, 1},
		"policy from a non-quote":        {[]string{"policy", "from-quote", notAQuote}, 1},
		"provision: no compose file":     {[]string{"provision", "--compose", filepath.Join(dir, "none.yaml"), "--state", filepath.Join(dir, "s"), "--tee", "sim-tdx"}, 1},
		"sign: no server":                {[]string{"sign", "--server", "http://127.0.0.1:1", "x"}, 1},
	} {
		_, err := testutil.RunErr(bin, c.args...)
		if got := exitCode(err); got != c.code {
			t.Errorf("%s (%v): exit %d, want %d", name, c.args, got, c.code)
		}
	}
}

// --tee auto (the default) on a machine with no TEE stops and names the
// simulators; it never picks one.
func TestAutoWithoutTEENamesTheSimulators(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/config/tsm/report"); err == nil {
		t.Skip("this machine has configfs-tsm")
	}
	if _, err := os.Stat("/dev/sev-guest"); err == nil {
		t.Skip("this machine has /dev/sev-guest")
	}
	dir := t.TempDir()
	compose := testutil.WriteFile(t, "docker-compose.yaml", []byte(composeYAML))
	out, err := testutil.RunErr(bin, "provision", "--compose", compose, "--state", filepath.Join(dir, "state"))
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "--tee sim-tdx") || !strings.Contains(string(out), "--tee sim-sev-snp") {
		t.Fatalf("provision with --tee auto and no TEE: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "sim-tdx-chain.pem")); err == nil {
		t.Fatal("a simulated chain was made")
	}
}

// --key-lifetime boot: while the server runs no private key file exists
// anywhere under the state directory, and a restart gives new keys.
func TestKeyLifetimeBootWhileServing(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(composeYAML), 0o644)
	var pubs []string
	for i := 0; i < 2; i++ {
		addr := testutil.FreeAddr(t)
		stop := serve(t, dir, addr, "--key-lifetime", "boot")
		filepath.WalkDir(filepath.Join(dir, "state"), func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "private_key") {
				t.Errorf("--key-lifetime boot: %s exists while serving", p)
			}
			return nil
		})
		pub, err := os.ReadFile(filepath.Join(dir, "crypto", "docker_public_key_ed25519.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, string(pub))
		stop()
	}
	if pubs[0] == pubs[1] {
		t.Fatal("--key-lifetime boot: the same key after a restart")
	}
}

// The simulated SEV-SNP path end to end: serve on sim-sev-snp, sign
// through the server, and `verify --compose` against the simulated
// registry passes with the same compose file and fails with another.
func TestSimSEVSNPWorkloadEndToEnd(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), []byte(composeYAML), 0o644)
	addr := testutil.FreeAddr(t)
	stop := serve(t, dir, addr, "--tee", "sim-sev-snp")
	defer stop()
	m := curlSign(t, addr, `{"key_type": "ed25519", "payload": "snp"}`)
	state := filepath.Join(dir, "state")
	args := func(compose string) []string {
		return []string{"verify", "--quote", filepath.Join(dir, "crypto", "docker_attestation_ed25519.txt"), "--message", "snp", "--signature", m["signature"],
			"--key-type", "ed25519", "--trust-root", filepath.Join(state, "sim-sev-snp-root.pem"), "--offline",
			"--compose", compose, "--registry", filepath.Join(state, "sim-registry")}
	}
	out := testutil.Run(t, bin, args(filepath.Join(dir, "docker-compose.yaml"))...)
	if !strings.Contains(string(out), `"status": "authentic_match"`) || !strings.Contains(string(out), `"tee": "sev-snp"`) {
		t.Fatalf("same compose file: %s", out)
	}
	other := testutil.WriteFile(t, "other.yaml", []byte(composeYAML+"# changed\n"))
	out, err := testutil.RunErr(bin, args(other)...)
	if exitCode(err) != 1 || !strings.Contains(string(out), `"status": "authentic_mismatch"`) {
		t.Fatalf("another compose file: %v %s", err, out)
	}
}
