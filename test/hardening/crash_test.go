package hardening

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/quote"
)

// crashRuns is the number of kill -9 runs; crashSeed fixes their schedule.
const (
	crashRuns = 60
	crashSeed = 20261123
)

// TestKill9DuringProvisioning kills `teesign provision` and `teesign serve`
// at seeded random moments during first-boot key creation and file
// writing, and checks after each that the state directory and the mounted
// files are complete (old or new, never partial) and that the next start
// succeeds with the same keys when keys existed (were recorded). The
// simulated TEE seals them, so this runs the sealed path.
func TestKill9DuringProvisioning(t *testing.T) {
	rng := rand.New(rand.NewSource(crashSeed))
	var killedEarly, killedLate, keysKept int
	// First-boot runs use a fresh state directory; the others reuse one
	// whose keys must survive.
	reused := t.TempDir()
	reusedCompose := writeCompose(t, reused)
	if out, err := exec.Command(bin, "provision", "--compose", reusedCompose, "--state", filepath.Join(reused, "state"), "--tee", "sim-tdx").CombinedOutput(); err != nil {
		t.Fatalf("initial provision: %v\n%s", err, out)
	}
	baseline := publicKeys(t, filepath.Join(reused, "state"))
	for run := 0; run < crashRuns; run++ {
		dir := reused
		compose := reusedCompose
		firstBoot := run%2 == 0
		if firstBoot {
			dir = t.TempDir()
			compose = writeCompose(t, dir)
		}
		state := filepath.Join(dir, "state")
		cmdName := "provision"
		if run%3 == 0 {
			cmdName = "serve"
		}
		args := []string{cmdName, "--compose", compose, "--state", state, "--tee", "sim-tdx"}
		if cmdName == "serve" {
			args = append(args, "--listen", freeAddr(t))
		}
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Intn(60_000)) * time.Microsecond
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err == nil {
			killedLate++ // it finished first
		} else {
			killedEarly++
		}
		checkComplete(t, run, dir)
		// The next start succeeds, with the same keys when keys existed.
		before := publicKeys(t, state)
		out, err := exec.Command(bin, "provision", "--compose", compose, "--state", state, "--tee", "sim-tdx").CombinedOutput()
		if err != nil {
			t.Fatalf("run %d (killed after %v): next provision failed: %v\n%s", run, delay, err, out)
		}
		after := publicKeys(t, state)
		for alg, pem := range before {
			if !bytes.Equal(pem, after[alg]) {
				t.Fatalf("run %d: the %s key changed after a crash", run, alg)
			}
			keysKept++
		}
		if !firstBoot {
			for alg, pem := range baseline {
				if !bytes.Equal(pem, after[alg]) {
					t.Fatalf("run %d: the existing %s key was replaced", run, alg)
				}
			}
		}
		checkComplete(t, run, dir)
	}
	t.Logf("kill -9: %d runs (seed %d): %d killed mid-way, %d finished before the kill; %d existing keys kept", crashRuns, crashSeed, killedEarly, killedLate, keysKept)
}

// publicKeys reads the public keys the state directory records (none
// before the record is written: key files without a record were never
// attested, and the next start retires them).
func publicKeys(t *testing.T, state string) map[keys.Alg][]byte {
	t.Helper()
	out := map[keys.Alg][]byte{}
	data, err := os.ReadFile(filepath.Join(state, keystore.RecordFile))
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec keystore.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("%s is partial or damaged: %v", keystore.RecordFile, err)
	}
	for alg, pem := range rec.PublicKeys {
		k, err := keys.ParsePublicKeyPEM([]byte(pem))
		if err != nil {
			t.Fatalf("recorded %s key: %v", alg, err)
		}
		out[alg] = k.MarshalPEM()
	}
	return out
}

// checkComplete: every file present is complete and consistent.
func checkComplete(t *testing.T, run int, dir string) {
	t.Helper()
	state := filepath.Join(dir, "state")
	pubs := publicKeys(t, state)
	entries, _ := os.ReadDir(state)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".teesign-tmp-") {
			continue // a crash's temp file: removed on the next start, never read
		}
		data, _ := os.ReadFile(filepath.Join(state, e.Name()))
		if strings.HasSuffix(e.Name(), ".pem") && !bytes.HasSuffix(data, []byte("-----\n")) {
			t.Fatalf("run %d: %s is partial", run, e.Name())
		}
		if (strings.HasSuffix(e.Name(), ".sealed") || strings.HasSuffix(e.Name(), ".json")) && !json.Valid(data) {
			t.Fatalf("run %d: %s is partial", run, e.Name())
		}
	}
	for _, alg := range keys.Algs() {
		pubFile := filepath.Join(dir, "crypto", "docker_public_key_"+string(alg)+".pem")
		if data, err := os.ReadFile(pubFile); err == nil {
			p, err := keys.ParsePublicKeyPEM(data)
			if err != nil {
				t.Fatalf("run %d: %s is partial: %v", run, pubFile, err)
			}
			if !bytes.Equal(p.MarshalPEM(), pubs[alg]) {
				t.Fatalf("run %d: %s is not the state's key", run, pubFile)
			}
		}
		qFile := filepath.Join(dir, "crypto", "docker_attestation_"+string(alg)+".txt")
		if data, err := os.ReadFile(qFile); err == nil {
			raw, _, err := quote.Decode(data)
			if err != nil || !bytes.HasSuffix(data, []byte("\n")) {
				t.Fatalf("run %d: %s is partial: %v", run, qFile, err)
			}
			rd, _ := quote.ReportData(raw)
			k, err := keys.PublicKeyFromReportData(alg, rd)
			if err != nil || !bytes.Equal(k.MarshalPEM(), pubs[alg]) {
				t.Fatalf("run %d: %s binds another key", run, qFile)
			}
		}
	}
}
