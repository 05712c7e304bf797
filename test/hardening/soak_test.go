package hardening

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/testutil"
)

// soakDuration is TEESIGN_SOAK (.ci/run sets 5m), else 15 s.
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("TEESIGN_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TEESIGN_SOAK: %v", err)
		}
		return d
	}
	return 15 * time.Second
}

// TestSustainedLoad sends mixed /sign and /sign/batch traffic, both key
// types, at a fixed rate, and requires zero errors and flat memory.
func TestSustainedLoad(t *testing.T) {
	d := startServe(t, "--log-level", "info")
	dur := soakDuration(t)
	mixes := []struct {
		path string
		body string
		rate float64
	}{
		{"/sign", `{"key_type":"secp256k1","payload":"soak ` + secretMarker + `"}`, 400},
		{"/sign", `{"key_type":"ed25519","payload":"soak ` + secretMarker + `","payload_encoding":"utf8"}`, 400},
		{"/sign", `{"key_type":"secp256k1","payload":"736f616b","payload_encoding":"hex","format":"eth_personal_sign"}`, 100},
		{"/sign/batch", `{"key_type":"ed25519","payloads":["a","b","c","d","e","f","g","h"]}`, 100},
	}
	// Fixed-rate load with vegeta; every response but 200 is an error.
	run := func(path, body string, rate float64, length time.Duration) *vegeta.Metrics {
		target := vegeta.Target{Method: "POST", URL: "http://" + d.addr + path, Body: []byte(body), Header: http.Header{"Content-Type": {"application/json"}}}
		a := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Connections(8), vegeta.Timeout(10*time.Second))
		m := &vegeta.Metrics{}
		for res := range a.Attack(vegeta.NewStaticTargeter(target), vegeta.Rate{Freq: int(rate), Per: time.Second}, length, path) {
			m.Add(res)
		}
		m.Close()
		return m
	}
	// Warm up, then take the starting RSS.
	run("/sign", mixes[0].body, 1000, 2*time.Second)
	rssStart := d.rssKiB(t)
	var wg sync.WaitGroup
	results := make([]*vegeta.Metrics, len(mixes))
	for i := range mixes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = run(mixes[i].path, mixes[i].body, mixes[i].rate, dur)
		}(i)
	}
	// Sample RSS along the way.
	var samples []int
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(dur / 10)
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			samples = append(samples, d.rssKiB(t))
		}
	}
	tick.Stop()
	rssEnd := d.rssKiB(t)
	var total, failed int64
	for i, r := range results {
		total += int64(r.Requests)
		failed += int64(r.Requests) - int64(r.StatusCodes["200"])
		t.Logf("%s %.40s…: %d requests at %.0f/s, status codes %v, latency p50 %v p99 %v, errors %v", mixes[i].path, mixes[i].body, r.Requests, r.Rate, r.StatusCodes, r.Latencies.P50, r.Latencies.P99, r.Errors)
	}
	t.Logf("sustained load: %v, %d requests, %d errors, RSS start %d KiB, end %d KiB, samples %v", dur, total, failed, rssStart, rssEnd, samples)
	if failed != 0 {
		t.Errorf("%d errors under sustained load", failed)
	}
	if rssEnd > rssStart+16<<10 || rssEnd > 64<<10 {
		t.Errorf("memory is not flat: RSS %d KiB → %d KiB", rssStart, rssEnd)
	}
	checkLogs(t, d)
}

// TestExposure: the server listens only on the address it was given, and
// no endpoint serves private key material.
func TestExposure(t *testing.T) {
	// The private keys are sealed in the state directory: to know what to
	// look for, this server also writes them where a (legacy) compose file
	// mounts them.
	dir := t.TempDir()
	compose := filepath.Join(dir, "docker-compose.yaml")
	if err := os.WriteFile(compose, []byte(composeYAML+`
  legacy:
    image: alpine
    volumes:
      - ./keys/docker_private_key_secp256k1.pem:/k1.pem
      - ./keys/docker_private_key_ed25519.pem:/k2.pem
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	td := testutil.Start(t, bin, nil, "serve", "--compose", compose, "--state", filepath.Join(dir, "state"), "--tee", "sim-tdx", "--listen", addr, "--log-level", "debug", "--allow-private-key-mounts")
	d := &daemon{addr: addr, cmd: td.Cmd, log: td.Log, dir: dir}
	out, err := exec.Command("ss", "-H", "-ltnp").Output()
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: ss is not available: %v", err)
	}
	pid := "pid=" + strconv.Itoa(d.cmd.Process.Pid) + ","
	var listening []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, pid) {
			listening = append(listening, strings.Fields(line)[3])
		}
	}
	if len(listening) != 1 || listening[0] != d.addr {
		t.Fatalf("the server listens on %v, want only %s", listening, d.addr)
	}
	// Every endpoint, none reveals a private key.
	secrets := []string{"PRIVATE KEY"}
	for _, alg := range keys.Algs() {
		data, err := os.ReadFile(filepath.Join(d.dir, "keys", "docker_private_key_"+string(alg)+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := keys.ParsePrivateKeyPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		der := k.MarshalPKCS8()
		secret := der[len(der)-32:] // ed25519: the seed ends the PKCS#8
		if alg == keys.Secp256k1 {
			// …04 20 <scalar> a1 44 03 42 00 <65-byte point>
			secret = der[len(der)-70-32 : len(der)-70]
		}
		if k2, err := keys.ParsePrivateKeyPEM(data); err != nil || len(secret) != 32 || !strings.Contains(hex.EncodeToString(k2.MarshalPKCS8()), hex.EncodeToString(secret)) {
			t.Fatal("could not locate the private key bytes")
		}
		secrets = append(secrets, hex.EncodeToString(secret), fmt.Sprintf("%x", secret[:12]))
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/metrics", "/public_key/secp256k1", "/public_key/ed25519", "/attestation/secp256k1", "/attestation/ed25519"} {
		resp, err := client.Get("http://" + d.addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, s := range secrets {
			if strings.Contains(strings.ToLower(string(body)), strings.ToLower(s)) {
				t.Errorf("%s reveals private key material", path)
			}
		}
		if strings.HasPrefix(path, "/attestation") && !json.Valid(body) {
			t.Errorf("%s is not JSON", path)
		}
	}
	checkLogs(t, d)
}
