package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/internal/testutil"
)

// startCmd starts a long-running teesign command until the test ends.
func startCmd(t *testing.T, args ...string) { testutil.Start(t, bin, nil, args...) }

// The reference document's Python client, unchanged but for its CONFIG,
// signs through teesign's server and verifies the quote: the TDX path
// parses the quote with `teesign verifier serve`, the SEV_SNP path parses
// the report locally.
func TestReferencePythonClient(t *testing.T) {
	py := testutil.Python(t)
	client := filepath.Join(testutil.RepoRoot(), "test", "reference", "secretvm_client.py")
	runner := filepath.Join(testutil.RepoRoot(), "test", "reference", "run_client.py")
	verifierAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startCmd(t, "verifier", "serve", "--listen", verifierAddr, "--offline")

	for _, tee := range []string{"sim-tdx", "sim-sev-snp"} {
		t.Run(tee, func(t *testing.T) {
			dir := t.TempDir()
			compose := []byte(composeYAML)
			os.WriteFile(filepath.Join(dir, "docker-compose.yaml"), compose, 0o644)
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			startCmd(t, "serve", "--compose", filepath.Join(dir, "docker-compose.yaml"), "--state", filepath.Join(dir, "state"), "--tee", tee, "--listen", addr)
			cfg := map[string]any{
				"SIGNING_SERVER_URL": "http://" + addr + "/sign",
				"QUOTE_PARSER_URL":   "http://" + verifierAddr + "/dcap-tools/quote-parse",
			}
			if tee == "sim-tdx" {
				m := simtee.TDXMeasurements([][]byte{compose})
				cfg["PLATFORM"] = "TDX"
				cfg["EXPECTED_TDX_ATTESTATION"] = map[string]string{
					"tcb_svn": m["tee_tcb_svn"], "mr_seam": m["mr_seam"], "mr_td": m["mr_td"],
					"rtmr0": m["rtmr0"], "rtmr1": m["rtmr1"], "rtmr2": m["rtmr2"], "rtmr3": m["rtmr3"],
				}
			} else {
				cfg["PLATFORM"] = "SEV_SNP"
				cfg["EXPECTED_SEV_SNP_ATTESTATION"] = map[string]string{"measurement": simtee.SNPMeasurements([][]byte{compose})["measurement"]}
			}
			js, _ := json.Marshal(cfg)
			cmd := exec.Command(py, runner, client, string(js))
			cmd.Dir = filepath.Join(dir, "crypto") // the client reads ./docker_attestation_ed25519.txt
			out, err := cmd.CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("Verification Result: Successful")) {
				t.Fatalf("reference client (%v):\n%s", err, out)
			}
			t.Logf("reference client:\n%s", out)
			// With another expected measurement it must fail (the check can fail).
			if tee == "sim-tdx" {
				cfg["EXPECTED_TDX_ATTESTATION"].(map[string]string)["rtmr3"] = strings.Repeat("00", 48)
			} else {
				cfg["EXPECTED_SEV_SNP_ATTESTATION"] = map[string]string{"measurement": strings.Repeat("00", 48)}
			}
			js, _ = json.Marshal(cfg)
			cmd = exec.Command(py, runner, client, string(js))
			cmd.Dir = filepath.Join(dir, "crypto")
			out, _ = cmd.CombinedOutput()
			if !bytes.Contains(out, []byte("Verification Result: Failed")) {
				t.Fatalf("reference client accepted a wrong measurement:\n%s", out)
			}
		})
	}
}
