// Command report runs teesign's benchmarks side by side and writes
// bench/RESULTS.md: in-process signing on one core (the limit), teesign's
// signing server pinned to that core under load from the other core, the
// Python baseline the same way, offline verification and quote parsing,
// provisioning time and resident memory. Run it with `bash bench/run.sh`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teesign/teesign/bench/loadgen"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/verify"
)

var (
	bin       = flag.String("teesign", "", "teesign binary")
	self      = flag.String("self", "", "this binary (for pinned sub-measurements)")
	out       = flag.String("out", "bench/RESULTS.md", "report file")
	repeats   = flag.Int("repeats", 5, "repeats of every measurement")
	dur       = flag.Duration("duration", 4*time.Second, "duration of each load run")
	mode      = flag.String("mode", "", "internal: limit-secp256k1, limit-ed25519, verify-sample, slow-windows")
	sample    = flag.String("sample", "testdata/secretvm-sample", "SecretVM sample folder")
	python    = flag.String("python", "python3", "python with cryptography")
	serverCPU = flag.String("server-cpu", "0", "CPU the servers are pinned to")
	loadCPU   = flag.String("load-cpu", "1", "CPU the load tool is pinned to")
	loadBin   = flag.String("load", "", "the load tool binary (bench/cmd/load)")
	niceness  = flag.Int("nice", -20, "niceness of the pinned servers and load tool, where permitted (0: leave it)")
)

func main() {
	flag.Parse()
	if *mode != "" {
		fmt.Println(inProcess(*mode))
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// inProcess measures operations per second on this process's single core,
// or for mode "slow-windows" how often the host slows that core down.
func inProcess(mode string) float64 {
	runtime.GOMAXPROCS(1)
	if mode == "slow-windows" {
		k, err := keys.Generate(keys.Ed25519)
		if err != nil {
			panic(err)
		}
		return slowWindows(k, 3*time.Second)
	}
	var op func()
	switch mode {
	case "limit-secp256k1", "limit-ed25519":
		k, _ := keys.Generate(keys.Alg(strings.TrimPrefix(mode, "limit-")))
		msgs := payloads()
		i := 0
		op = func() { k.Sign(msgs[i%len(msgs)]); i++ }
	case "verify-sample":
		q, _ := os.ReadFile(filepath.Join(*sample, "quote.txt"))
		privPEM, _ := os.ReadFile(filepath.Join(*sample, "private_key.pem"))
		k, err := keys.ParsePrivateKeyPEM(privPEM)
		if err != nil {
			panic(err)
		}
		msg := []byte("My Secret Message")
		sig := k.Sign(msg)
		op = func() {
			res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true})
			if err != nil || !res.Valid {
				panic(fmt.Sprint("sample does not verify: ", err))
			}
		}
	default:
		panic("unknown mode " + mode)
	}
	for i := 0; i < 200; i++ {
		op()
	}
	n, start := 0, time.Now()
	for time.Since(start) < 3*time.Second {
		op()
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// slowWindows signs with k for d and returns the percentage of 5 ms
// windows in which it signed less than 80 % of what it signed in the
// median window. A server pinned to this core at 80 % of its peak falls
// behind in each such window.
func slowWindows(k *keys.PrivateKey, d time.Duration) float64 {
	msgs := payloads()
	const window = 5 * time.Millisecond
	var counts []int64
	start := time.Now()
	end, n, signed := start.Add(window), int64(0), 0
	for time.Since(start) < d {
		k.Sign(msgs[signed%len(msgs)])
		signed++
		n++
		if now := time.Now(); now.After(end) {
			counts = append(counts, n)
			n, end = 0, end.Add(window)
		}
	}
	return 100 * loadgen.SlowFraction(counts)
}

// mix is how many distinct payloads every measurement signs: the load
// tool's /sign requests cycle through them, each /sign/batch request
// carries them all, and the in-process measurements sign them in turn.
const mix = 64

// payloads are the mix's messages.
func payloads() [][]byte {
	var msgs [][]byte
	for _, p := range loadgen.Payloads(mix) {
		msgs = append(msgs, []byte(p))
	}
	return msgs
}

// freeAddr returns a loopback address with a port free now (fixed ports in
// the ephemeral range can collide with the load tool's own connections).
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pinned is a command pinned to the server core, with GOMAXPROCS=1.
func pinned(args ...string) *exec.Cmd {
	cmd := onCore(*serverCPU, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	return cmd
}

// onCore is a command pinned to cpu with taskset and, where this user may
// (root or CAP_SYS_NICE), run at the -nice niceness, so that the VM's own
// background work (kdamond, containerd, the RCU thread) takes only a
// sliver of a benchmarked core instead of an equal share.
func onCore(cpu string, args ...string) *exec.Cmd {
	args = append([]string{"taskset", "-c", cpu}, args...)
	if reniced() {
		args = append([]string{"nice", "-n", strconv.Itoa(*niceness)}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

// reniced says whether onCore's commands run at the -nice niceness: nice
// run as a user who may not raise priority warns and runs the command at
// the usual niceness.
var reniced = sync.OnceValue(func() bool {
	if *niceness == 0 {
		return false
	}
	out, err := exec.Command("nice", "-n", strconv.Itoa(*niceness), "nice").Output()
	return err == nil && strings.TrimSpace(string(out)) == strconv.Itoa(*niceness)
})

func measureInProcess(mode string) (float64, error) {
	out, err := pinned(*self, "-mode", mode, "-sample", *sample).Output()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", mode, err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// server is a pinned server process.
type server struct {
	cmd     *exec.Cmd
	addr    string
	stopped bool
}

func start(addr string, cmd *exec.Cmd, ready string) (*server, error) {
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), ready) {
				ch <- true
			}
		}
		ch <- false
	}()
	select {
	case ok := <-ch:
		if !ok {
			cmd.Wait()
			return nil, fmt.Errorf("%v exited before listening: %s", cmd.Args, stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%v did not start", cmd.Args)
	}
	return &server{cmd: cmd, addr: addr}, nil
}

// cpu returns the CPU time the server's threads have used: the sum of
// the first field of each /proc/PID/task/TID/schedstat, in nanoseconds.
func (s *server) cpu() (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("server CPU time: %w", err)
	}
	if len(tasks) == 0 {
		return 0, fmt.Errorf("server CPU time: no /proc/%d/task/*/schedstat: has the server exited?", s.cmd.Process.Pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that has just exited
		}
		f := strings.Fields(string(data))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("server CPU time: %s: %w", t, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// stop interrupts the server and waits for it to exit; it may be called
// again.
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
	}
}

// rss returns the process's resident and peak resident memory in MiB.
func (s *server) rss() (cur, peak float64) {
	// taskset execs the server, so the PID is the server's.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			kb, _ := strconv.ParseFloat(f[1], 64)
			if f[0] == "VmRSS:" {
				cur = kb / 1024
			} else {
				peak = kb / 1024
			}
		}
	}
	return cur, peak
}

// signArgs are the load tool's flags for signing requests with alg, each
// a /sign/batch of the whole mix if batch, else a /sign of one of its
// payloads. The load tool builds the bodies (loadgen.SignBodies).
func signArgs(alg string, batch bool) []string {
	if batch {
		return []string{"-path", "/sign/batch", "-key-type", alg, "-batch", strconv.Itoa(mix)}
	}
	return []string{"-path", "/sign", "-key-type", alg, "-payloads", strconv.Itoa(mix)}
}

// load runs the load tool as its own process on the load core, with the
// request flags args (signArgs, or -path and -body).
func load(addr string, args []string, conns int, rate float64) (loadgen.Result, error) {
	what := strings.Join(args, " ")
	args = append([]string{*loadBin, "-json", "-addr", addr, "-conns", strconv.Itoa(conns),
		"-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-duration", dur.String()}, args...)
	out, err := onCore(*loadCPU, args...).Output()
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("load %s: %w", what, err)
	}
	var res loadgen.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("load %s: %w", what, err)
	}
	fmt.Fprintf(os.Stderr, "report:   %s conns=%d rate=%.0f: %v\n", what, conns, rate, res)
	return res, nil
}

// cpuAt runs an open loop of /sign alg at rate and returns the cores the
// server used meanwhile.
func cpuAt(srv *server, alg string, rate float64) (float64, error) {
	c0, err := srv.cpu()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	res, err := load(srv.addr, signArgs(alg, false), 16, rate)
	if err != nil || res.Errors > 0 {
		return 0, fmt.Errorf("/sign %s at %.0f/s: %v %v", alg, rate, res, err)
	}
	c1, err := srv.cpu()
	if err != nil {
		return 0, err
	}
	return (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}

// openLoop measures the p99 latency of /sign at frac of the closed-loop
// peak into p99. This machine's capacity drifts by tens of percent within
// a minute (shared host), so the rate comes from a peak measured just
// before the run, and the peak is measured again just after it into drift;
// the share of slow 100 ms windows in those two peak runs goes into unsteady.
func openLoop(addr, alg string, frac float64, p99, drift, unsteady *series) error {
	before, err := load(addr, signArgs(alg, false), 16, 0)
	if err != nil || before.Errors > 0 {
		return fmt.Errorf("/sign %s: %v %v", alg, before, err)
	}
	res, err := load(addr, signArgs(alg, false), 16, frac*before.PerSecond)
	if err != nil || res.Errors > 0 {
		return fmt.Errorf("/sign %s open loop: %v %v", alg, res, err)
	}
	p99.add(float64(res.P99.Microseconds())/1000, 0)
	p99.latency(res)
	after, err := load(addr, signArgs(alg, false), 16, 0)
	if err != nil || after.Errors > 0 {
		return fmt.Errorf("/sign %s: %v %v", alg, after, err)
	}
	drift.add(after.PerSecond/before.PerSecond, 0)
	unsteady.add(100*before.SlowWindows, 0)
	unsteady.add(100*after.SlowWindows, 0)
	return nil
}

// series collects one figure over the repeats.
type series struct {
	name, unit, cmd string
	vals            []float64
	ratios          []float64    // to the limit, same repeat
	lat             [][4]float64 // load runs: p50, p90, p99, p99.9 in ms, each repeat
	target          string
	check           func(median float64) bool
}

func (s *series) add(v, limit float64) {
	s.vals = append(s.vals, v)
	if limit > 0 {
		s.ratios = append(s.ratios, v/limit)
	}
}

// latency notes a load run's percentiles.
func (s *series) latency(r loadgen.Result) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	s.lat = append(s.lat, [4]float64{ms(r.P50), ms(r.P90), ms(r.P99), ms(r.P999)})
}

// latencies formats the median of each percentile over the repeats.
func (s *series) latencies() string {
	if len(s.lat) == 0 {
		return ""
	}
	var q [4]string
	for i := range q {
		v := make([]float64, len(s.lat))
		for j, l := range s.lat {
			v[j] = l[i]
		}
		q[i] = num(median(v))
	}
	return strings.Join(q[:], " / ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return c[len(c)/2]
}

func spread(v []float64) string {
	if len(v) == 0 {
		return ""
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return fmt.Sprintf("%s – %s", num(c[0]), num(c[len(c)-1]))
}

func num(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 1:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
	return strconv.FormatFloat(f, 'f', 3, 64)
}

func run() error {
	if *bin == "" || *self == "" || *loadBin == "" {
		return fmt.Errorf("need -teesign, -self and -load (use bench/run.sh)")
	}
	tmp, err := os.MkdirTemp("", "teesign-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	compose := filepath.Join(tmp, "docker-compose.yaml")
	os.WriteFile(compose, []byte("services:\n  app:\n    image: app\n    volumes:\n      - ./crypto/docker_public_key_secp256k1.pem:/k1.pem\n      - ./crypto/docker_attestation_secp256k1.txt:/q1.txt\n      - ./crypto/docker_public_key_ed25519.pem:/k2.pem\n      - ./crypto/docker_attestation_ed25519.txt:/q2.txt\n"), 0o644)
	sample, _ := os.ReadFile(filepath.Join(*sample, "quote.txt"))
	// Every server started is stopped on the way out, error or not.
	var running []*server
	defer func() {
		for _, s := range running {
			s.stop()
		}
	}()
	launch := func(addr string, cmd *exec.Cmd, ready string) (*server, error) {
		s, err := start(addr, cmd, ready)
		if err == nil {
			running = append(running, s)
		}
		return s, err
	}

	all := []*series{}
	mk := func(name, unit, cmd, target string, check func(float64) bool) *series {
		s := &series{name: name, unit: unit, cmd: cmd, target: target, check: check}
		all = append(all, s)
		return s
	}
	ratioAtLeast := func(min float64) func(float64) bool { return func(r float64) bool { return r >= min } }
	limit := map[string]*series{}
	sign := map[string]*series{}
	batch := map[string]*series{}
	py := map[string]*series{}
	p99 := map[string]*series{}
	p99at70 := map[string]*series{}
	drift := map[string]*series{}
	vsPy := map[string]*series{}
	for _, alg := range []string{"secp256k1", "ed25519"} {
		limit[alg] = mk("limit: in-process "+alg+" signing, 1 core", "sig/s", "bash bench/run.sh (in-process, mode limit-"+alg+")", "", nil)
	}
	for _, alg := range []string{"secp256k1", "ed25519"} {
		t := map[string]float64{"secp256k1": 0.60, "ed25519": 0.45}[alg]
		sign[alg] = mk("teesign POST /sign "+alg+", 16 conns", "req/s", "go run ./bench/cmd/load -key-type "+alg+" -conns 16", fmt.Sprintf("≥ %.2f × limit", t), ratioAtLeast(t))
	}
	for _, alg := range []string{"secp256k1", "ed25519"} {
		batch[alg] = mk(fmt.Sprintf("teesign POST /sign/batch %s (%d/request), 4 conns", alg, mix), "sig/s", fmt.Sprintf("go run ./bench/cmd/load -path /sign/batch -batch %d -key-type %s -conns 4", mix, alg), "≥ 0.90 × limit", ratioAtLeast(0.90))
	}
	for _, alg := range []string{"secp256k1", "ed25519"} {
		p99at70[alg] = mk("teesign /sign "+alg+" p99 at 70% of peak (open loop)", "ms", "go run ./bench/cmd/load -key-type "+alg+" -conns 16 -rate <0.7×peak just measured>", "", nil)
		p99[alg] = mk("teesign /sign "+alg+" p99 at 80% of peak (open loop)", "ms", "go run ./bench/cmd/load -key-type "+alg+" -conns 16 -rate <0.8×peak just measured>", "< 5 ms", nil)
		drift[alg] = mk("machine drift: /sign "+alg+" peak just after ÷ just before each open-loop run", "×", "(same runs; 1.00 = stable)", "", nil)
	}
	cpuFracs := []float64{0.25, 0.5}
	cpuPoll := map[float64]*series{}
	for _, f := range cpuFracs {
		pct := fmt.Sprintf("%.0f %%", 100*f)
		cpuPoll[f] = mk("teesign serve CPU at "+pct+" of its ed25519 peak", "cores", "go run ./bench/cmd/load -key-type ed25519 -conns 16 -rate <"+pct+" of the server's peak>; /proc/PID/task/*/schedstat", "", nil)
	}
	for _, alg := range []string{"secp256k1", "ed25519"} {
		py[alg] = mk("baseline: Python cryptography + http.server /sign "+alg, "req/s", "taskset -c 0 python3 bench/baseline/server.py --port 49200; taskset -c 1 go run ./bench/cmd/load -addr 127.0.0.1:49200 -key-type "+alg, "", nil)
		vsPy[alg] = mk("teesign /sign "+alg+" ÷ Python baseline", "×", "(the two measured back to back, each repeat)", "≥ 4 ×", nil)
	}
	unsteady := mk("host around the open loops: 100 ms windows of the closed-loop peak runs just before and after, in which teesign answered under 80 % of the run's median", "%", "go run ./bench/cmd/load -key-type <alg> -conns 16 (the SlowWindows figure)", "", nil)
	hostSlow := mk("host: 5 ms windows in which the server's core signed under 80 % of its median speed (3 s probe)", "%", "bash bench/run.sh (in-process, mode slow-windows)", "", nil)
	verifyS := mk("offline verifications of the SecretVM sample (chain, binding, signature), 1 core", "verif/s", "bash bench/run.sh (in-process, mode verify-sample)", "", nil)
	parse := mk("teesign verifier: POST /dcap-tools/quote-parse, 1 core", "req/s", "teesign verifier serve --offline; go run ./bench/cmd/load -path /dcap-tools/quote-parse", "", nil)
	prov := mk("provisioning, first boot, sim-tdx (keys, chain, quotes, files)", "ms", "time teesign provision --tee sim-tdx --compose F --state NEW", "", nil)
	provAgain := mk("provisioning, later boot, sim-tdx", "ms", "time teesign provision --tee sim-tdx --compose F --state SAME", "", nil)
	rssIdle := mk("teesign serve RSS, idle", "MiB", "/proc/PID/status VmRSS", "", nil)
	rssLoad := mk("teesign serve RSS, peak under load", "MiB", "/proc/PID/status VmHWM", "< 64 MiB", func(v float64) bool { return v < 64 })
	for _, s := range p99 {
		s.check = func(v float64) bool { return v < 5 }
	}
	for _, s := range vsPy {
		s.check = func(v float64) bool { return v >= 4 }
	}

	for r := 0; r < *repeats; r++ {
		fmt.Fprintf(os.Stderr, "report: repeat %d/%d\n", r+1, *repeats)
		// The host's speed drifts, so the limit is measured again around
		// each figure that is compared with it.
		measureLimit := func(alg string) (float64, error) {
			v, err := measureInProcess("limit-" + alg)
			if err != nil {
				return 0, err
			}
			limit[alg].add(v, 0)
			return v, nil
		}
		// Provisioning.
		state := filepath.Join(tmp, fmt.Sprintf("state-%d", r))
		for i, s := range []*series{prov, provAgain} {
			t0 := time.Now()
			if out, err := pinned(*bin, "provision", "--tee", "sim-tdx", "--compose", compose, "--state", state).CombinedOutput(); err != nil {
				return fmt.Errorf("provision %d: %v\n%s", i, err, out)
			}
			s.add(float64(time.Since(t0).Microseconds())/1000, 0)
		}
		// The Python baseline runs beside teesign serve, idle but for its
		// own measurement just after teesign's, so that the two are compared
		// within seconds of each other on this drifting host.
		baddr := freeAddr()
		_, bport, _ := net.SplitHostPort(baddr)
		base, err := launch(baddr, pinned(*python, "bench/baseline/server.py", "--port", bport), "listening")
		if err != nil {
			return err
		}
		// teesign serve.
		addr := freeAddr()
		srv, err := launch(addr, pinned(*bin, "serve", "--tee", "sim-tdx", "--compose", compose, "--state", state, "--listen", addr, "--log-level", "error"), "listening on")
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		cur, _ := srv.rss()
		rssIdle.add(cur, 0)
		peak := map[string]float64{}
		sw, err := measureInProcess("slow-windows")
		if err != nil {
			return err
		}
		hostSlow.add(sw, 0)
		for _, alg := range []string{"secp256k1", "ed25519"} {
			// Each throughput is compared with the mean of the limits
			// measured just before and just after it, which cancels a
			// steady drift of the host's speed across the figure.
			limBefore, err := measureLimit(alg)
			if err != nil {
				return err
			}
			res, err := load(addr, signArgs(alg, false), 16, 0)
			if err != nil || res.Errors > 0 {
				return fmt.Errorf("/sign %s: %v %v", alg, res, err)
			}
			peak[alg] = res.PerSecond
			pres, err := load(baddr, signArgs(alg, false), 16, 0)
			if err != nil || pres.Errors > 0 {
				return fmt.Errorf("baseline %s: %v %v", alg, pres, err)
			}
			vsPy[alg].add(peak[alg]/pres.PerSecond, 0)
			limBetween, err := measureLimit(alg)
			if err != nil {
				return err
			}
			sign[alg].add(res.PerSecond, (limBefore+limBetween)/2)
			sign[alg].latency(res)
			py[alg].add(pres.PerSecond, (limBefore+limBetween)/2)
			py[alg].latency(pres)
			res, err = load(addr, signArgs(alg, true), 4, 0)
			if err != nil || res.Errors > 0 {
				return fmt.Errorf("/sign/batch %s: %v %v", alg, res, err)
			}
			limAfter, err := measureLimit(alg)
			if err != nil {
				return err
			}
			batch[alg].add(res.PerSecond*mix, (limBetween+limAfter)/2)
			batch[alg].latency(res)
			for _, f := range []struct {
				frac float64
				s    *series
			}{{0.7, p99at70[alg]}, {0.8, p99[alg]}} {
				if err := openLoop(addr, alg, f.frac, f.s, drift[alg], unsteady); err != nil {
					return err
				}
			}
		}
		polled := map[float64]float64{}
		for _, f := range cpuFracs {
			if polled[f], err = cpuAt(srv, "ed25519", f*peak["ed25519"]); err != nil {
				return err
			}
			cpuPoll[f].add(polled[f], 0)
		}
		_, hwm := srv.rss()
		rssLoad.add(hwm, 0)
		srv.stop()
		base.stop()
		// Verification.
		v, err := measureInProcess("verify-sample")
		if err != nil {
			return err
		}
		verifyS.add(v, 0)
		vaddr := freeAddr()
		ver, err := launch(vaddr, pinned(*bin, "verifier", "serve", "--offline", "--listen", vaddr), "listening on")
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]string{"quote": strings.TrimSpace(string(sample))})
		res, err := load(vaddr, []string{"-path", "/dcap-tools/quote-parse", "-body", string(body)}, 16, 0)
		ver.stop()
		if err != nil || res.Errors > 0 {
			return fmt.Errorf("quote-parse: %v %v", res, err)
		}
		parse.add(res.PerSecond, 0)
		parse.latency(res)
	}
	return write(all)
}

// onlineCPUs counts the machine's CPUs (runtime.NumCPU sees only the
// CPUs this process is pinned to).
func onlineCPUs() string {
	out, err := exec.Command("nproc", "--all").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i > 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}

func write(all []*series) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# teesign benchmark results\n\n")
	fmt.Fprintf(&b, "Made by `bash bench/run.sh` on %s (%s cores, %s, %s/%s, %s), %s, at commit %s (the signing server on net/http).\n", host, onlineCPUs(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), gitCommit())
	fmt.Fprintf(&b, "Servers (teesign with GOMAXPROCS=1, and the Python baseline) are pinned to core %s with `taskset`; the load tool (bench/cmd/load: keep-alive connections, one busy-polling event loop) runs pinned to core %s.", *serverCPU, *loadCPU)
	if reniced() {
		fmt.Fprintf(&b, " Both, and the in-process measurements, run at niceness %d (`nice -n %d`), so that the VM's own background threads get only a sliver of their cores.", *niceness, *niceness)
	} else {
		b.WriteString(" They run at the usual niceness (this user may not raise priority): the VM's background threads can take an equal share of their cores.")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Each figure is the median of %d repeats; the spread is min – max over them. Ratios are to the mean of the in-process limits measured on the same core just before and just after the figure (the limit rows gather all those measurements). The limit and the load tool sign the same %d distinct payloads: /sign requests cycle through them, each /sign/batch request carries them all, and the limit signs them in turn (one message signed over and over would keep secp256k1's nonce-indexed table entries in cache and sign some 5 %% faster).\n\n", *repeats, mix)
	b.WriteString("To reproduce one server figure by hand: `GOMAXPROCS=1 taskset -c 0 teesign serve --tee sim-tdx --compose examples/docker-compose.yaml --state /tmp/s --listen 127.0.0.1:49153 --log-level error`, then the figure's command pinned with `taskset -c 1`.\n\n")
	b.WriteString("| figure | median | unit | spread | latency p50 / p90 / p99 / p99.9, ms (median of each) | ratio to limit (median, spread) | target | met | reproduce |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range all {
		m := median(s.vals)
		ratio, met := "", ""
		if len(s.ratios) > 0 {
			ratio = fmt.Sprintf("%s (%s)", num(median(s.ratios)), spread(s.ratios))
		}
		if s.check != nil {
			v := m
			if len(s.ratios) > 0 && strings.Contains(s.target, "limit") {
				v = median(s.ratios)
			}
			met = "no"
			if s.check(v) {
				met = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | `%s` |\n", s.name, num(m), s.unit, spread(s.vals), s.latencies(), ratio, s.target, met, s.cmd)
	}
	b.WriteString(`
Reading the rows. The load tool busy-polls its sockets, in the closed loop too: a load tool asleep
in epoll_wait makes the server wake it on every response, an inter-processor interrupt on a VM paid
inside the server's write(2), 12 % of the server's core at the /sign peak by perf. The Python
baseline is measured with the same tool, just after teesign. The latency column is per request
(a /sign/batch request carries the whole mix); in a closed loop it includes the wait behind the other
connections' requests, so the open-loop rows are the ones that say what a caller waits at a given
load. "Peak" is the closed-loop /sign
throughput with 16 connections, measured just before each open-loop run; the open loop then sends at
a fixed fraction of it, on schedule, each latency counting from the scheduled start (a wait for a
free connection included; a request unanswered at the end is an error). In an open loop a request
often finds the server (net/http) asleep in epoll_wait, and being woken costs it a context switch
and, on a VM, the vCPU's halt and wake-up; the CPU rows show the server's cost at lower rates. At
80 % of peak, whatever the server, each stretch in which the host runs the server's core at under 80 % of
its speed is an overload, and the queue it leaves takes four times as long again to drain: the
"host" rows measure how much of the time that is on this machine, in the same run (the first in the
very closed-loop runs that set the open loops' rates), and the "machine drift" rows show how far the
host's speed moved across each open-loop run (1.00 = stable). On this VM a kernel thread, kdamond
(DAMON), wakes every 512 ms on either core and at times runs for over 100 ms, and containerd runs a
few milliseconds at a time: at the usual niceness each takes half of the core it lands on, hence the
raised priority.
`)
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}

// gitCommit names the commit measured, or "unknown".
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
