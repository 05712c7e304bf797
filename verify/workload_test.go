package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/verify"
	"github.com/teesign/teesign/workload"
)

// A compose file checked against the (simulated) registry pins the
// workload: the same file passes, another fails the workload check by
// status, for both simulated TEEs.
func TestWorkloadCheckOnSimulatedSecretVM(t *testing.T) {
	compose := []byte("services:\n  app:\n    image: alpine\n")
	reg := simtee.Registry("")
	for _, tee := range []string{"sim-tdx", "sim-sev-snp"} {
		dir := t.TempDir()
		k, _ := keys.Generate(keys.Ed25519)
		var ev *quote.Evidence
		var rootFile string
		var err error
		if tee == "sim-tdx" {
			p, _ := simtee.NewTDX(dir, simtee.Options{Workload: [][]byte{compose}})
			ev, err = p.Quote(context.Background(), k.Public().ReportData())
			rootFile = simtee.TDXRootFile
		} else {
			p, _ := simtee.NewSNP(dir, simtee.Options{Workload: [][]byte{compose}})
			ev, err = p.Quote(context.Background(), k.Public().ReportData())
			rootFile = simtee.SNPRootFile
		}
		if err != nil {
			t.Fatal(err)
		}
		q := quote.Encode(ev.Kind, ev.Raw)
		msg := []byte("workload")
		run := func(c []byte) *verify.Result {
			res, err := verify.Verify(context.Background(), q, msg, k.Sign(msg), verify.Options{KeyType: "ed25519", Offline: true,
				TrustedCerts: trusted(t, filepath.Join(dir, rootFile)), Workload: &verify.WorkloadCheck{Registry: reg, Workload: workload.Workload{Compose: c}}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		res := run(compose)
		if !res.Valid || byName(res, "workload").Status != "pass" || byName(res, "policy").Status != "pass" || res.AnyWorkload ||
			res.Workload.Status != workload.AuthenticMatch || res.Workload.Template != "small" || res.Workload.Env != "sim" || res.Workload.ArtifactsVersion != simtee.SimVersion {
			t.Fatalf("%s, same compose file: %+v %+v", tee, res.Checks, res.Workload)
		}
		res = run(append(append([]byte{}, compose...), ' '))
		if wc := byName(res, "workload"); res.Valid || wc.Status != "fail" || !slices.Equal(wc.Rules, []string{workload.AuthenticMismatch}) {
			t.Fatalf("%s, another compose file: %+v", tee, res.Checks)
		}
		// Another image: no build in the registry.
		other := simtee.Registry("other")
		res, err = verify.Verify(context.Background(), q, msg, k.Sign(msg), verify.Options{KeyType: "ed25519", Offline: true,
			TrustedCerts: trusted(t, filepath.Join(dir, rootFile)), Workload: &verify.WorkloadCheck{Registry: other, Workload: workload.Workload{Compose: compose}}})
		if err != nil || res.Valid || !slices.Equal(byName(res, "workload").Rules, []string{workload.NotAuthentic}) {
			t.Fatalf("%s, registry of another image: %v %+v", tee, err, res.Checks)
		}
	}
	// A registry without builds for the TEE is an error, not a verdict.
	empty := &workload.Registry{Source: "empty"}
	_, q, k := simTDX(t, keys.Ed25519, nil)
	if _, err := verify.Verify(context.Background(), q, []byte("m"), k.Sign([]byte("m")), verify.Options{KeyType: "ed25519", Offline: true,
		Workload: &verify.WorkloadCheck{Registry: empty}}); err == nil {
		t.Fatal("an empty registry gave a verdict")
	}
}

// The real SecretVM sample is an older build than any in SecretVM's
// registry: not_authentic, while its hardware chain still verifies.
func TestSecretVMSampleIsNotARegisteredBuild(t *testing.T) {
	dir := os.Getenv("TEESIGN_SECRETVM_VERIFY_DIR")
	if dir == "" {
		dir = filepath.Join(testutil.RepoRoot(), "testdata", "secretvm-verify")
	}
	reg, err := workload.Load(filepath.Join(dir, "registry"))
	if err != nil {
		t.Skipf("SKIPPED: SecretVM's registry is not in %s/registry (testdata/secretvm-verify/README.md): %v", dir, err)
	}
	q, k := sample(t)
	res, err := verify.Verify(context.Background(), q, []byte("m"), k.Sign([]byte("m")), verify.Options{KeyType: "ed25519", Offline: true,
		Workload: &verify.WorkloadCheck{Registry: reg, Workload: workload.Workload{Compose: []byte("services: {}\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || res.Workload.Status != workload.NotAuthentic || status(res)["quote_signature"] != "pass" || status(res)["cert_chain"] != "pass" {
		t.Fatalf("%+v %+v", res.Checks, res.Workload)
	}
}
