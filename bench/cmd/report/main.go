// Command report runs teesign's benchmarks and writes bench/RESULTS.md:
// in-process signing on one core (the limit), teesign's signing server
// pinned to that core beside a minimal net/http server (bench/refserver,
// the reference ceiling) and a Python baseline, loaded from the other core
// by wrk (closed loop) and vegeta (fixed rate); verification speeds;
// provisioning time; resident memory. Run it with `bash bench/run.sh`.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var (
	bin       = flag.String("teesign", "", "teesign binary")
	refBin    = flag.String("refserver", "", "bench/refserver binary")
	self      = flag.String("self", "", "this binary (for pinned sub-measurements)")
	out       = flag.String("out", "bench/RESULTS.md", "report file")
	repeats   = flag.Int("repeats", 5, "repeats of every measurement")
	dur       = flag.Duration("duration", 4*time.Second, "duration of each load run")
	mode      = flag.String("mode", "", "internal: limit-<alg>, rawverify-<alg>, batchverify-<alg>, cachedverify-<alg>, libquote, verify-sample, openloop")
	sample    = flag.String("sample", "testdata/secretvm-sample", "SecretVM sample folder")
	python    = flag.String("python", "python3", "python with cryptography")
	serverCPU = flag.String("server-cpu", "0", "CPU the servers are pinned to")
	loadCPU   = flag.String("load-cpu", "1", "CPU the load tools are pinned to")
	niceness  = flag.Int("nice", -20, "niceness of the pinned servers and load tools, where permitted (0: leave it)")
	// openloop mode.
	target = flag.String("url", "", "openloop: URL to POST to")
	body   = flag.String("body", "", "openloop: file of request bodies, one per line, sent in turn")
	rate   = flag.Float64("rate", 0, "openloop: requests per second")
)

func main() {
	flag.Parse()
	var err error
	switch {
	case *mode == "openloop":
		err = openLoopMode()
	case *mode != "":
		fmt.Println(inProcess(*mode))
	default:
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// mix is how many distinct payloads every measurement signs: /sign runs
// cycle through them, each /sign/batch request carries them all, and the
// in-process limit signs them in turn. (secp256k1 signing indexes a table
// by its RFC 6979 nonce; one message signed over and over keeps the same
// entries in cache and runs some 5 % faster.)
const mix = 64

func payloads() []string {
	p := make([]string, mix)
	for i := range p {
		p[i] = fmt.Sprintf("benchmark payload %d", i)
	}
	return p
}

// freeAddr returns a loopback address free now, with a port below the
// kernel's ephemeral range (32768 and up), where the load tools' own
// connections would otherwise take it between the check and the bind.
func freeAddr() string {
	for p := 20000 + rand.IntN(10000); ; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return l.Addr().String()
		}
	}
}

func run() error {
	if *bin == "" || *self == "" || *refBin == "" {
		return fmt.Errorf("need -teesign, -refserver and -self (use bench/run.sh)")
	}
	tmp, err := os.MkdirTemp("", "teesign-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	compose := filepath.Join(tmp, "docker-compose.yaml")
	os.WriteFile(compose, []byte("services:\n  app:\n    image: app\n    volumes:\n      - ./crypto/docker_public_key_secp256k1.pem:/k1.pem\n      - ./crypto/docker_attestation_secp256k1.txt:/q1.txt\n      - ./crypto/docker_public_key_ed25519.pem:/k2.pem\n      - ./crypto/docker_attestation_ed25519.txt:/q2.txt\n"), 0o644)
	scripts, err := writeScripts(tmp)
	if err != nil {
		return err
	}
	var running []*server
	defer func() {
		for _, s := range running {
			s.stop()
		}
	}()
	launch := func(addr string, cmd []string, ready string) (*server, error) {
		s, err := start(addr, pinned(cmd...), ready)
		if err == nil {
			running = append(running, s)
		}
		return s, err
	}

	r := &report{}
	r.cpu0, _ = readCPUTime()
	algs := []string{"secp256k1", "ed25519"}
	limit, sign, ref, vsRef, py, vsPy, batch, p99half, p99eighty, p99ref, refPy := map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}
	for _, alg := range algs {
		limit[alg] = r.mk("limit: in-process "+alg+" signing, 1 core", "sig/s", "bash bench/run.sh (mode limit-"+alg+")", "", nil)
	}
	for _, alg := range algs {
		ref[alg] = r.mk("reference: bench/refserver (net/http + encoding/json) POST /sign "+alg+", 16 conns", "req/s", "wrk -t1 -c16 -s sign-"+alg+".lua http://REF", "", nil)
		sign[alg] = r.mk("teesign POST /sign "+alg+", 16 conns", "req/s", "wrk -t1 -c16 -s sign-"+alg+".lua http://TEESIGN", "", nil)
		vsRef[alg] = r.mk("teesign /sign "+alg+" ÷ reference server", "×", "(measured back to back, each repeat)", "≥ 0.90", atLeast(0.90))
	}
	for _, alg := range algs {
		batch[alg] = r.mk(fmt.Sprintf("teesign POST /sign/batch %s (%d/request), 4 conns", alg, mix), "sig/s", "wrk -t1 -c4 -s batch-"+alg+".lua http://TEESIGN", "≥ 0.90 × limit", atLeast(0.90))
		batch[alg].limitRatio = true
	}
	for _, alg := range algs {
		p99half[alg] = r.mk("teesign /sign "+alg+" p99 at 50 % of peak (vegeta, fixed rate)", "ms", "report -mode openloop -url http://TEESIGN/sign -rate <0.5 × peak just measured>", "< 5 ms", below(5))
		p99ref[alg] = r.mk("reference: bench/refserver /sign "+alg+" p99 at the same rate (vegeta, fixed rate)", "ms", "report -mode openloop -url http://REF/sign -rate <the rate of the row above>", "", nil)
		p99eighty[alg] = r.mk("teesign /sign "+alg+" p99 at 80 % of peak (vegeta, fixed rate)", "ms", "report -mode openloop -url http://TEESIGN/sign -rate <0.8 × peak just measured>", "", nil)
	}
	for _, alg := range algs {
		py[alg] = r.mk("baseline: Python cryptography + http.server /sign "+alg, "req/s", "python3 bench/baseline/server.py; wrk -t1 -c16 -s sign-"+alg+".lua", "", nil)
		vsPy[alg] = r.mk("teesign /sign "+alg+" ÷ Python baseline", "×", "(measured back to back, each repeat)", "≥ 4", atLeast(4))
		refPy[alg] = r.mk("reference server /sign "+alg+" ÷ Python baseline (what net/http itself reaches)", "×", "(measured back to back, each repeat)", "", nil)
	}
	libQuote := r.mk("go-tdx-guest's offline check of one sim-tdx quote alone (verify.RawTdxQuote), 1 core", "checks/s", "bash bench/run.sh (mode libquote)", "", nil)
	raw, batchV, vsRaw, ceiling, cachedV, vsRawCached := map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}, map[string]*series{}
	for _, alg := range algs {
		raw[alg] = r.mk("raw "+alg+" signature verification, 1 core", "verif/s", "bash bench/run.sh (mode rawverify-"+alg+")", "", nil)
		batchV[alg] = r.mk(fmt.Sprintf("verify.VerifyBatch: %d %s messages of one quote, first sight (quote checked in the call), offline, 1 core", mix, alg), "msg/s", "bash bench/run.sh (mode batchverify-"+alg+")", "", nil)
		vsRaw[alg] = r.mk(fmt.Sprintf("%d messages of one quote, first sight ÷ raw verification, %s", mix, alg), "×", "(measured back to back, each repeat)", "≥ 0.80", atLeast(0.80))
		ceiling[alg] = r.mk(fmt.Sprintf("ceiling of the first-sight ratio: %d raw verifications ÷ (%d raw + go-tdx-guest's quote check), %s", mix, mix, alg), "×", "(from the two rows above, each repeat)", "", nil)
		cachedV[alg] = r.mk(fmt.Sprintf("verify.VerifyBatch: %d %s messages of one quote, verdict cached (Options.Cache, as the CLI and verifier service run), offline, 1 core", mix, alg), "msg/s", "bash bench/run.sh (mode cachedverify-"+alg+")", "", nil)
		vsRawCached[alg] = r.mk(fmt.Sprintf("%d messages of one quote, verdict cached ÷ raw verification, %s", mix, alg), "×", "(measured back to back, each repeat)", "≥ 0.80", atLeast(0.80))
	}
	full := r.mk("full offline verification of the SecretVM sample (chain, binding, signature), 1 core", "verif/s", "bash bench/run.sh (mode verify-sample)", "", nil)
	parse := r.mk("teesign verifier: POST /dcap-tools/quote-parse, 1 core, 16 conns", "req/s", "teesign verifier serve --offline; wrk -t1 -c16 -s quote-parse.lua", "", nil)
	prov := r.mk("provisioning, first boot, sim-tdx (keys, chain, quotes, files)", "ms", "time teesign provision --tee sim-tdx --compose F --state NEW", "", nil)
	provAgain := r.mk("provisioning, later boot, sim-tdx", "ms", "time teesign provision --tee sim-tdx --compose F --state SAME", "", nil)
	rssIdle := r.mk("teesign serve RSS, idle", "MiB", "/proc/PID/status VmRSS", "", nil)
	rssLoad := r.mk("teesign serve RSS, peak under load", "MiB", "/proc/PID/status VmHWM", "< 64 MiB", below(64))

	for rep := 0; rep < *repeats; rep++ {
		fmt.Fprintf(os.Stderr, "report: repeat %d/%d\n", rep+1, *repeats)
		state := filepath.Join(tmp, fmt.Sprintf("state-%d", rep))
		for i, s := range []*series{prov, provAgain} {
			t0 := time.Now()
			if out, err := pinned(*bin, "provision", "--tee", "sim-tdx", "--compose", compose, "--state", state).CombinedOutput(); err != nil {
				return fmt.Errorf("provision %d: %v\n%s", i, err, out)
			}
			s.add(float64(time.Since(t0).Microseconds())/1000, 0)
		}
		addr, raddr, paddr := freeAddr(), freeAddr(), freeAddr()
		srv, err := launch(addr, []string{*bin, "serve", "--tee", "sim-tdx", "--compose", compose, "--state", state, "--listen", addr, "--log-level", "error"}, "listening on")
		if err != nil {
			return err
		}
		rs, err := launch(raddr, []string{*refBin, "-listen", raddr}, "listening on")
		if err != nil {
			return err
		}
		_, pport, _ := net.SplitHostPort(paddr)
		ps, err := launch(paddr, []string{*python, "bench/baseline/server.py", "--port", pport}, "listening")
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		cur, _ := srv.rss()
		rssIdle.add(cur, 0)
		for _, alg := range algs {
			limBefore, err := measure("limit-" + alg)
			if err != nil {
				return err
			}
			limit[alg].add(limBefore, 0)
			t, err := wrk(addr, scripts["sign-"+alg], 16)
			if err != nil {
				return err
			}
			rr, err := wrk(raddr, scripts["sign-"+alg], 16)
			if err != nil {
				return err
			}
			pr, err := wrk(paddr, scripts["sign-"+alg], 16)
			if err != nil {
				return err
			}
			sign[alg].addRun(t)
			ref[alg].addRun(rr)
			py[alg].addRun(pr)
			vsRef[alg].add(t.perSecond/rr.perSecond, 0)
			vsPy[alg].add(t.perSecond/pr.perSecond, 0)
			refPy[alg].add(rr.perSecond/pr.perSecond, 0)
			b, err := wrk(addr, scripts["batch-"+alg], 4)
			if err != nil {
				return err
			}
			limAfter, err := measure("limit-" + alg)
			if err != nil {
				return err
			}
			limit[alg].add(limAfter, 0)
			batch[alg].add(b.perSecond*mix, (limBefore+limAfter)/2)
			batch[alg].lat = append(batch[alg].lat, b.lat)
			for _, f := range []struct {
				frac float64
				s    *series
			}{{0.5, p99half[alg]}, {0.8, p99eighty[alg]}} {
				ol, err := openLoop("http://"+addr+"/sign", scripts["bodies-"+alg], f.frac*t.perSecond)
				if err != nil {
					return err
				}
				f.s.add(ol.lat[2], 0)
				f.s.lat = append(f.s.lat, ol.lat)
				if f.frac == 0.5 {
					// The same rate against the reference: what net/http,
					// the load tool and this machine leave of the target.
					rl, err := openLoop("http://"+raddr+"/sign", scripts["bodies-"+alg], f.frac*t.perSecond)
					if err != nil {
						return err
					}
					p99ref[alg].add(rl.lat[2], 0)
					p99ref[alg].lat = append(p99ref[alg].lat, rl.lat)
				}
			}
		}
		_, hwm := srv.rss()
		rssLoad.add(hwm, 0)
		srv.stop()
		rs.stop()
		ps.stop()
		lq, err := measure("libquote")
		if err != nil {
			return err
		}
		libQuote.add(lq, 0)
		for _, alg := range algs {
			rv, err := measure("rawverify-" + alg)
			if err != nil {
				return err
			}
			bv, err := measure("batchverify-" + alg)
			if err != nil {
				return err
			}
			cv, err := measure("cachedverify-" + alg)
			if err != nil {
				return err
			}
			raw[alg].add(rv, 0)
			batchV[alg].add(bv, 0)
			vsRaw[alg].add(bv/rv, 0)
			sigs := float64(mix) / rv
			ceiling[alg].add(sigs/(sigs+1/lq), 0)
			cachedV[alg].add(cv, 0)
			vsRawCached[alg].add(cv/rv, 0)
		}
		v, err := measure("verify-sample")
		if err != nil {
			return err
		}
		full.add(v, 0)
		vaddr := freeAddr()
		ver, err := launch(vaddr, []string{*bin, "verifier", "serve", "--offline", "--listen", vaddr}, "listening on")
		if err != nil {
			return err
		}
		qp, err := wrk(vaddr, scripts["quote-parse"], 16)
		ver.stop()
		if err != nil {
			return err
		}
		parse.addRun(qp)
	}
	return r.write()
}

// writeScripts writes wrk's Lua scripts and vegeta's bodies.
func writeScripts(dir string) (map[string]string, error) {
	files := map[string]string{}
	lua := func(path string, bodies []string) string {
		var b strings.Builder
		b.WriteString("local bodies = {\n")
		for _, body := range bodies {
			fmt.Fprintf(&b, "  %q,\n", body)
		}
		fmt.Fprintf(&b, "}\nlocal i = 0\nlocal headers = {[\"Content-Type\"] = \"application/json\"}\n")
		fmt.Fprintf(&b, "request = function()\n  i = i %% #bodies + 1\n  return wrk.format(\"POST\", %q, headers, bodies[i])\nend\n", path)
		return b.String()
	}
	for _, alg := range []string{"secp256k1", "ed25519"} {
		var one []string
		for _, p := range payloads() {
			one = append(one, fmt.Sprintf(`{"key_type":%q,"payload":%q}`, alg, p))
		}
		files["sign-"+alg] = lua("/sign", one)
		files["bodies-"+alg] = strings.Join(one, "\n") + "\n"
		quoted := make([]string, mix)
		for i, p := range payloads() {
			quoted[i] = fmt.Sprintf("%q", p)
		}
		files["batch-"+alg] = lua("/sign/batch", []string{fmt.Sprintf(`{"key_type":%q,"payloads":[%s]}`, alg, strings.Join(quoted, ","))})
	}
	q, err := os.ReadFile(filepath.Join(*sample, "quote.txt"))
	if err != nil {
		return nil, err
	}
	files["quote-parse"] = lua("/dcap-tools/quote-parse", []string{fmt.Sprintf(`{"quote":%q}`, strings.TrimSpace(string(q)))})
	paths := map[string]string{}
	for name, text := range files {
		p := filepath.Join(dir, name+".lua")
		if strings.HasPrefix(name, "bodies-") {
			p = filepath.Join(dir, name+".txt")
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return nil, err
		}
		paths[name] = p
	}
	return paths, nil
}
