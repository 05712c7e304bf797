package workload_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/workload"
)

// The embedded registry is exactly what workload/registry/ holds: builds
// when SecretVM's files are there, none (and Empty says so) when not.
func TestEmbeddedRegistryLoads(t *testing.T) {
	r, err := workload.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "registry")
	for tee, name := range map[string]string{"tdx": "tdx.csv", "sev-snp": "sev.json"} {
		_, statErr := os.Stat(filepath.Join(dir, name))
		if present := statErr == nil; r.Empty(tee) == present {
			t.Errorf("%s: %s present %v, but the embedded registry is empty: %v", tee, name, present, r.Empty(tee))
		}
	}
}

func TestRegistryRoundTripAndStrictParsing(t *testing.T) {
	dir := t.TempDir()
	reg := simtee.Registry("")
	if err := reg.Write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := workload.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.TDX) != 1 || !bytes.Equal(back.TDX[0].RootfsData, reg.TDX[0].RootfsData) || len(back.SNP) != 1 || back.SNP[0].OVMFHash != reg.SNP[0].OVMFHash {
		t.Fatalf("round trip: %+v", back)
	}
	for name, csv := range map[string]string{
		"missing column": "template_name,vm_type,artifacts_ver,mrtd\nsmall,prod,v1,00\n",
		"short mrtd":     "template_name,vm_type,artifacts_ver,mrtd,rtmr0,rtmr1,rtmr2,rootfs_data\nsmall,prod,v1,00," + strings.Repeat("00", 48) + "," + strings.Repeat("00", 48) + "," + strings.Repeat("00", 48) + ",00\n",
	} {
		if _, err := workload.ParseTDX(strings.NewReader(csv)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := workload.ParseSNP([]byte(`[{"ovmf_hash":"00","kernel_hash":"00"}]`)); err == nil {
		t.Error("a short ovmf_hash accepted")
	}
	if _, err := workload.Load(t.TempDir()); err == nil {
		t.Error("a folder with no registry file accepted")
	}
}

func TestSecretVMIdentifiers(t *testing.T) {
	if got := string(workload.FamilyID("prod", "small")); got != "prod-small-sev##" {
		t.Fatalf("family_id %q", got)
	}
	if got := string(workload.ImageID("v0.0.25")); got != "v0.0.25#########" {
		t.Fatalf("image_id %q", got)
	}
	if got := workload.Cmdline([]byte{0xab}, "cd", nil); got != "console=ttyS0 loglevel=7 docker_compose_hash=ab rootfs_hash=cd" {
		t.Fatalf("cmdline %q", got)
	}
	if got := workload.Cmdline([]byte{0xab}, "cd", []byte{0xef}); !strings.HasSuffix(got, " docker_additional_files_hash=ef") {
		t.Fatalf("cmdline with docker files %q", got)
	}
}

// On a mismatch the newest candidate is reported: higher version first, a
// release before its pre-releases.
func TestMismatchNamesTheNewestCandidate(t *testing.T) {
	base := simtee.Registry("").TDX[0]
	reg := &workload.Registry{Source: "test"}
	for _, v := range []string{"v0.0.25-beta.2", "v0.0.9", "v0.0.25", "v0.0.24", "v0.0.25-beta.10"} {
		b := base
		b.ArtifactsVersion = v
		reg.TDX = append(reg.TDX, b)
	}
	m := workload.TDXMeasurements{MRTD: base.MRTD, RTMR: [4][]byte{base.RTMR0, base.RTMR1, base.RTMR2, make([]byte, 48)}}
	res := reg.CheckTDX(m, workload.Workload{Compose: []byte("x")})
	if res.Status != workload.AuthenticMismatch || res.ArtifactsVersion != "v0.0.25" {
		t.Fatalf("%+v", res)
	}
	reg.TDX = reg.TDX[:2] // v0.0.25-beta.2 and v0.0.9
	if res := reg.CheckTDX(m, workload.Workload{Compose: []byte("x")}); res.ArtifactsVersion != "v0.0.25-beta.2" {
		t.Fatalf("%+v", res)
	}
	m.MRTD = make([]byte, 48)
	if res := reg.CheckTDX(m, workload.Workload{}); res.Status != workload.NotAuthentic {
		t.Fatalf("unknown MRTD: %+v", res)
	}
}

// realData returns the folder holding SecretVM's published registry
// (registry/tdx.csv, registry/sev.json) and secretvm-verify's test data
// (test-data/), or skips.
func realData(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEESIGN_SECRETVM_VERIFY_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "testdata", "secretvm-verify")
	}
	if _, err := os.Stat(filepath.Join(dir, "registry", "tdx.csv")); err != nil {
		t.Skipf("SKIPPED: SecretVM's registry and secretvm-verify's test data are not in %s (testdata/secretvm-verify/README.md says what to put there; or set TEESIGN_SECRETVM_VERIFY_DIR)", dir)
	}
	return dir
}

func readData(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "test-data", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretvm-verify's own expectations (python/tests/test_verification.py):
// its docker-check quotes and compose files are small/v0.0.25/prod.
func TestRealSecretVMDockerCheck(t *testing.T) {
	dir := realData(t)
	reg, err := workload.Load(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(readData(t, dir, "tdx_cpu_docker_check_quote.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	compose := readData(t, dir, "tdx_cpu_docker_check_compose.yaml")
	body := raw[48:]
	m := workload.TDXMeasurements{MRTD: body[136:184], RTMR: [4][]byte{body[328:376], body[376:424], body[424:472], body[472:520]}}
	want := workload.Result{Status: workload.AuthenticMatch, TEE: "tdx", Template: "small", ArtifactsVersion: "v0.0.25", Env: "prod"}
	if got := reg.CheckTDX(m, workload.Workload{Compose: compose}); got != want {
		t.Fatalf("TDX docker-check: %+v", got)
	}
	changed := append([]byte{}, compose...)
	changed[0] ^= 1
	if got := reg.CheckTDX(m, workload.Workload{Compose: changed}); got.Status != workload.AuthenticMismatch || got.Template != "small" {
		t.Fatalf("TDX, one byte of the compose file changed: %+v", got)
	}
	m.MRTD = append([]byte{}, m.MRTD...)
	m.MRTD[0] ^= 0xff
	if got := reg.CheckTDX(m, workload.Workload{Compose: compose}); got.Status != workload.NotAuthentic {
		t.Fatalf("TDX, flipped MRTD byte: %+v", got)
	}
	sraw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(readData(t, dir, "amd_cpu_docker_check_quote.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	scompose := readData(t, dir, "amd_cpu_docker_check_compose.yaml")
	rep := workload.SNPReport{Measurement: sraw[0x90:0xC0], FamilyID: sraw[0x10:0x20], ImageID: sraw[0x20:0x30]}
	want = workload.Result{Status: workload.AuthenticMatch, TEE: "sev-snp", Template: "small", ArtifactsVersion: "v0.0.25", Env: "prod"}
	if got := reg.CheckSNP(rep, workload.Workload{Compose: scompose}); got != want {
		t.Fatalf("SEV-SNP docker-check: %+v", got)
	}
	if got := reg.CheckSNP(rep, workload.Workload{Compose: append(scompose, '\n')}); got.Status != workload.AuthenticMismatch {
		t.Fatalf("SEV-SNP, changed compose file: %+v", got)
	}
}

// RTMR3 is replayed from SHA-256(compose) and rootfs_data, and the
// docker-files digest when (and only when) one is given, each entry
// zero-padded to 48 bytes.
func TestReplayRTMR3Log(t *testing.T) {
	extend := func(rtmr, entry []byte) []byte {
		e := make([]byte, 48)
		copy(e, entry)
		h := sha512.Sum384(append(append([]byte(nil), rtmr...), e...))
		return h[:]
	}
	compose, rootfs, docker := []byte("services: {}\n"), bytes.Repeat([]byte{7}, 48), bytes.Repeat([]byte{9}, 32)
	c := sha256.Sum256(compose)
	two := extend(extend(make([]byte, 48), c[:]), rootfs)
	if got := workload.ReplayRTMR3(compose, rootfs, nil); !bytes.Equal(got, two) {
		t.Fatalf("without docker files: %x, want %x", got, two)
	}
	if got := workload.ReplayRTMR3(compose, rootfs, docker); !bytes.Equal(got, extend(two, docker)) {
		t.Fatalf("with docker files: %x", got)
	}
}

// A registry reports which TEEs it has builds for; a bad tdx.csv row is
// named by its line.
func TestRegistryEmptyAndLineNumbers(t *testing.T) {
	r := &workload.Registry{TDX: simtee.Registry("").TDX}
	if r.Empty("tdx") || !r.Empty("sev-snp") {
		t.Fatalf("a TDX-only registry: empty tdx %v, empty sev-snp %v", r.Empty("tdx"), r.Empty("sev-snp"))
	}
	r = &workload.Registry{SNP: simtee.Registry("").SNP}
	if !r.Empty("tdx") || r.Empty("sev-snp") {
		t.Fatalf("an SEV-SNP-only registry: empty tdx %v, empty sev-snp %v", r.Empty("tdx"), r.Empty("sev-snp"))
	}
	tdx, _, err := simtee.Registry("").Files()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(tdx)), "\n")
	bad := strings.Join([]string{lines[0], lines[1], strings.Replace(lines[1], ",", ",x", 4)}, "\n")
	if _, err := workload.ParseTDX(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "tdx.csv line 3:") {
		t.Fatalf("bad third line: %v", err)
	}
}
