package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// pinned is a command pinned to the server core, with GOMAXPROCS=1.
func pinned(args ...string) *exec.Cmd {
	cmd := onCore(*serverCPU, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	return cmd
}

// onCore is a command pinned to cpu with taskset and, where this user may
// (root or CAP_SYS_NICE), run at the -nice niceness, so that the VM's own
// background work (kdamond, containerd) takes only a sliver of a
// benchmarked core instead of an equal share.
func onCore(cpu string, args ...string) *exec.Cmd {
	args = append([]string{"taskset", "-c", cpu}, args...)
	if reniced() {
		args = append([]string{"nice", "-n", strconv.Itoa(*niceness)}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

// reniced says whether onCore's commands run at the -nice niceness.
var reniced = sync.OnceValue(func() bool {
	if *niceness == 0 {
		return false
	}
	out, err := exec.Command("nice", "-n", strconv.Itoa(*niceness), "nice").Output()
	return err == nil && strings.TrimSpace(string(out)) == strconv.Itoa(*niceness)
})

// measure runs an in-process measurement pinned to the server core.
func measure(mode string) (float64, error) {
	out, err := pinned(*self, "-mode", mode, "-sample", *sample).Output()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", mode, err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// loadRun is a load run's throughput and latency percentiles (p50, p90,
// p99, in ms).
type loadRun struct {
	perSecond float64
	lat       [3]float64
}

var (
	wrkRate    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: .*`)
)

// wrk runs a closed loop: conns keep-alive connections from one thread
// pinned to the load core, for the run's duration.
func wrk(addr, script string, conns int) (loadRun, error) {
	cmd := onCore(*loadCPU, "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(dur.Seconds())), "--latency", "-s", script, "http://"+addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return loadRun{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		return loadRun{}, fmt.Errorf("wrk against %s: %s non-200 responses\n%s", addr, m[1], s)
	}
	if m := wrkSockErr.FindString(s); m != "" {
		return loadRun{}, fmt.Errorf("wrk against %s: %s", addr, m)
	}
	m := wrkRate.FindStringSubmatch(s)
	if m == nil {
		return loadRun{}, fmt.Errorf("wrk: no Requests/sec in\n%s", s)
	}
	r := loadRun{}
	r.perSecond, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range wrkPct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		r.lat[map[string]int{"50": 0, "90": 1, "99": 2}[p[1]]] = v
	}
	return r, nil
}

// openLoop runs vegeta at a fixed rate from the load core (this binary in
// mode openloop).
func openLoop(url, bodies string, rate float64) (loadRun, error) {
	out, err := onCore(*loadCPU, *self, "-mode", "openloop", "-url", url, "-body", bodies, "-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-duration", dur.String()).Output()
	if err != nil {
		return loadRun{}, fmt.Errorf("open loop at %.0f/s: %w", rate, err)
	}
	var r struct {
		PerSecond float64    `json:"per_second"`
		Lat       [3]float64 `json:"latency_ms"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return loadRun{}, fmt.Errorf("open loop: %v: %s", err, out)
	}
	return loadRun{r.PerSecond, r.Lat}, nil
}

// openLoopMode sends POSTs of the body file's lines, in turn, at -rate
// for -duration with vegeta, and prints the throughput and latencies; any
// response but 200 is an error. The load core must not add a tail of its
// own: latencies are kept in a slice allocated up front and sorted after
// the run (vegeta.Metrics feeds a t-digest per result on the same core),
// and this process's collector is held off while the attack runs (a few
// hundred MB for a run of seconds).
func openLoopMode() error {
	data, err := os.ReadFile(*body)
	if err != nil {
		return err
	}
	var targets []vegeta.Target
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		targets = append(targets, vegeta.Target{Method: "POST", URL: *target, Body: line, Header: http.Header{"Content-Type": {"application/json"}}})
	}
	lat := make([]time.Duration, 0, int(*rate*dur.Seconds())+1024)
	codes := map[uint16]int{}
	var errs []string
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	attacker := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Connections(64), vegeta.MaxConnections(64), vegeta.Workers(64), vegeta.HTTP2(false), vegeta.Timeout(10*time.Second))
	start := time.Now()
	for res := range attacker.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{Freq: int(*rate), Per: time.Second}, *dur, "open loop") {
		codes[res.Code]++
		if res.Code != http.StatusOK {
			if res.Error != "" && len(errs) < 5 {
				errs = append(errs, res.Error)
			}
			continue
		}
		lat = append(lat, res.Latency)
	}
	elapsed := time.Since(start)
	if len(lat) == 0 || codes[http.StatusOK] != len(lat) || len(codes) != 1 {
		return fmt.Errorf("open loop: status codes %v, errors %v", codes, errs)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[int(math.Ceil(p*float64(len(lat))))-1].Microseconds()) / 1000
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"per_second": float64(len(lat)) / elapsed.Seconds(), "latency_ms": [3]float64{q(0.50), q(0.90), q(0.99)}})
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

// stop interrupts the server and waits for it to exit; it may be called
// again.
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(os.Interrupt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cmd.Process.Kill()
	}
}

// rss returns the process's resident and peak resident memory in MiB
// (taskset and nice exec the server, so the PID is the server's).
func (s *server) rss() (cur, peak float64) {
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
