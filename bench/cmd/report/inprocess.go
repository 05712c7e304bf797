package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	tdxverify "github.com/google/go-tdx-guest/verify"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/verify"
)

// inProcess measures operations per second on this process's single core.
func inProcess(mode string) float64 {
	runtime.GOMAXPROCS(1)
	msgs := make([][]byte, mix)
	for i, p := range payloads() {
		msgs[i] = []byte(p)
	}
	i, per := 0, 1
	var op func()
	alg := keys.Alg(mode[strings.LastIndex(mode, "-")+1:])
	switch {
	case strings.HasPrefix(mode, "limit-"):
		k := must(keys.Generate(alg))
		op = func() { k.Sign(msgs[i%mix]); i++ }
	case strings.HasPrefix(mode, "rawverify-"):
		k := must(keys.Generate(alg))
		sigs := make([][]byte, mix)
		for j, m := range msgs {
			sigs[j] = k.Sign(m)
		}
		pub := k.Public()
		op = func() {
			if err := pub.Verify(msgs[i%mix], sigs[i%mix]); err != nil {
				panic(err)
			}
			i++
		}
	case strings.HasPrefix(mode, "batchverify-"), strings.HasPrefix(mode, "cachedverify-"):
		// batchverify: each call checks the quote, as on first sight;
		// cachedverify: the quote's verdict is kept between calls, as
		// `teesign verify --bundle DIR` and the verifier service keep it.
		// Both trust the simulated root as those do: sorted once.
		q, items, roots := simQuote(alg, msgs)
		per = len(items)
		o := verify.Options{KeyType: string(alg), Trust: must(verify.NewTrust(roots, verify.AMDCerts{})), Offline: true, AnyWorkload: true}
		if strings.HasPrefix(mode, "cachedverify-") {
			o.Cache = verify.NewVerdictCache(0)
		}
		op = func() {
			rs, err := verify.VerifyBatch(context.Background(), q, items, o)
			if err != nil || !rs[len(rs)-1].Valid {
				panic(fmt.Sprint("batch does not verify: ", err))
			}
		}
	case mode == "libquote":
		// go-tdx-guest's offline check of the quote alone (chain and
		// signatures): the part of a first-sight verification no caller
		// of the library can avoid.
		q, _, roots := simQuote(keys.Ed25519, msgs[:1])
		raw, _, err := quote.Decode(q)
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		for _, c := range roots {
			pool.AddCert(c)
		}
		op = func() {
			now := time.Now()
			ts := &tdxverify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}
			if err := tdxverify.RawTdxQuote(raw, &tdxverify.Options{TrustedRoots: pool, Now: ts}); err != nil {
				panic(fmt.Sprint("quote does not verify: ", err))
			}
		}
	case mode == "verify-sample":
		q := must(os.ReadFile(filepath.Join(*sample, "quote.txt")))
		k := must(keys.ParsePrivateKeyPEM(must(os.ReadFile(filepath.Join(*sample, "private_key.pem")))))
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
	for range 100 {
		op()
	}
	n, start := 0, time.Now()
	for time.Since(start) < 3*time.Second {
		op()
		n += per
	}
	return float64(n) / time.Since(start).Seconds()
}

// simQuote is a sim-tdx quote binding a new key of alg, the key's
// signatures of msgs, and the simulated root.
func simQuote(alg keys.Alg, msgs [][]byte) ([]byte, []verify.Signed, []*x509.Certificate) {
	dir := must(os.MkdirTemp("", "teesign-bench-quote-"))
	defer os.RemoveAll(dir)
	p := must(simtee.NewTDX(dir, simtee.Options{}))
	k := must(keys.Generate(alg))
	ev := must(p.Quote(context.Background(), k.Public().ReportData()))
	items := make([]verify.Signed, len(msgs))
	for j, m := range msgs {
		items[j] = verify.Signed{Message: m, Signature: k.Sign(m)}
	}
	roots := must(verify.ParseCerts(must(os.ReadFile(filepath.Join(dir, simtee.TDXRootFile)))))
	return quote.Encode(ev.Kind, ev.Raw), items, roots
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
