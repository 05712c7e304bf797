package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// series collects one figure over the repeats.
type series struct {
	name, unit, cmd string
	vals            []float64
	ratios          []float64    // to the limit, same repeat
	lat             [][3]float64 // load runs: p50, p90, p99 in ms
	target          string
	check           func(float64) bool
	// limitRatio: the target applies to the ratio to the limit.
	limitRatio bool
}

type report struct {
	all []*series
	// cpu0 is the machine's CPU time when the run started.
	cpu0 cpuTime
}

// cpuTime is the machine's CPU time so far, in seconds: all of it, and the
// part the hypervisor gave to other guests (steal).
type cpuTime struct{ total, steal float64 }

// readCPUTime reads /proc/stat; ok is false where there is none.
func readCPUTime() (t cpuTime, ok bool) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return t, false
	}
	st, err := fs.Stat()
	if err != nil {
		return t, false
	}
	c := st.CPUTotal
	return cpuTime{total: c.User + c.Nice + c.System + c.Idle + c.Iowait + c.IRQ + c.SoftIRQ + c.Steal, steal: c.Steal}, true
}

func (r *report) mk(name, unit, cmd, target string, check func(float64) bool) *series {
	s := &series{name: name, unit: unit, cmd: cmd, target: target, check: check}
	r.all = append(r.all, s)
	return s
}

func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }
func below(max float64) func(float64) bool   { return func(v float64) bool { return v < max } }

func (s *series) add(v, limit float64) {
	s.vals = append(s.vals, v)
	if limit > 0 {
		s.ratios = append(s.ratios, v/limit)
	}
}

func (s *series) addRun(r loadRun) {
	s.add(r.perSecond, 0)
	s.lat = append(s.lat, r.lat)
}

func (s *series) latencies() string {
	if len(s.lat) == 0 {
		return ""
	}
	var q [3]string
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

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// write writes the table, keeping any part of the old file after the
// "## " heading of a section report does not make (the verifier page's).
func (r *report) write() error {
	var b strings.Builder
	nproc, _ := exec.Command("nproc", "--all").Output()
	fmt.Fprintf(&b, "# teesign benchmark results\n\n")
	fmt.Fprintf(&b, "Made by `bash bench/run.sh` (%s cores, %s, %s/%s, %s), %s, at commit %s.\n", strings.TrimSpace(string(nproc)), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), gitCommit())
	fmt.Fprintf(&b, "Servers (teesign serve and bench/refserver with GOMAXPROCS=1, the Python baseline) run pinned to core %s; the load tools, wrk (closed loop: keep-alive connections, each with one request outstanding) and vegeta (fixed rate), pinned to core %s", *serverCPU, *loadCPU)
	if reniced() {
		fmt.Fprintf(&b, "; all at niceness %d, so that the VM's background threads take only a sliver of their cores", *niceness)
	}
	fmt.Fprintf(&b, ". Each figure is the median of %d repeats of %v; the spread is min – max. Ratios are taken within a repeat, between runs made back to back; a ratio to the limit is to the mean of the in-process limits measured just before and just after. Every run signs the same %d distinct payloads.", *repeats, *dur, mix)
	if now, ok := readCPUTime(); ok && r.cpu0.total > 0 && now.total > r.cpu0.total {
		fmt.Fprintf(&b, " The hypervisor withheld %.1f %% of the VM's CPU time during the run (steal time, /proc/stat): the more, the slower and noisier every figure.", 100*(now.steal-r.cpu0.steal)/(now.total-r.cpu0.total))
	}
	b.WriteString("\n\n")
	b.WriteString("| figure | median | unit | spread | latency p50 / p90 / p99, ms | ratio to limit | target | met | reproduce |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.all {
		m := median(s.vals)
		ratio, met := "", ""
		if len(s.ratios) > 0 {
			ratio = fmt.Sprintf("%s (%s)", num(median(s.ratios)), spread(s.ratios))
		}
		if s.check != nil {
			v := m
			if s.limitRatio {
				v = median(s.ratios)
			}
			met = map[bool]string{true: "yes", false: "no"}[s.check(v)]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | `%s` |\n", s.name, num(m), s.unit, spread(s.vals), s.latencies(), ratio, s.target, met, s.cmd)
	}
	b.WriteString(`
The reference server is what net/http and encoding/json cost around the same signing code, with
nothing else: teesign's /sign adds strict decoding, limits and metrics, and is measured as a
fraction of it. In a closed loop the latency includes the wait behind the other connections'
requests; the fixed-rate rows say what a caller waits at that load (vegeta's latency counts from
when it sent each request), and the reference server at the same rate shows how much of that
tail is net/http's, the load tool's and the machine's. The load tool keeps its latencies in a
slice sorted after the run, with its own garbage collector held off, so that it adds no tail of
its own (vegeta's Metrics feed a t-digest per result on the load core, and that alone put
milliseconds on the p99 of a server that does nothing).

The Python rows' target (at least 4 times the Python baseline) dates from when the signing server
carried its own HTTP/1.1 stack; on net/http, teesign's ratio is bounded by the reference server's,
shown beside it.

Verifying messages of one quote costs, on first sight, one check of the quote and then one
signature verification per message. The check of the quote is go-tdx-guest's (seven P-256
verifications: the root's self-signature, the PCK chain twice, the QE report and the quote), and
it bounds what a first-sight batch can reach: the "ceiling" rows. Once a quote's verdict is
kept (Options.Cache, as "teesign verify --bundle" and "teesign verifier serve" keep it, until
the first certificate or collateral document it relied on expires), each further message costs
about one signature verification.
`)
	if old, err := os.ReadFile(*out); err == nil {
		if i := strings.Index(string(old), "\n## "); i >= 0 {
			b.WriteString(string(old[i:]))
		}
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}
