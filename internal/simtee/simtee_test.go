package simtee_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sevabi "github.com/google/go-sev-guest/abi"
	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
)

var rd = func() (r [64]byte) {
	for i := range r {
		r[i] = byte(i)
	}
	return
}()

func readCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func TestSimTDXVerifiesOnlyWithSimRoot(t *testing.T) {
	dir := t.TempDir()
	workload := [][]byte{[]byte("services: {}\n")}
	p, err := simtee.NewTDX(dir, simtee.Options{Workload: workload})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	// SecretVM's replay of [SHA-256(compose), rootfs_data], computed with
	// Python's hashlib (rootfs_data = SHA-256("teesign-sim/rootfs_data")).
	const wantRTMR3 = "4b41c367f83a2b627d56ae738c5024432a94fe454b78f03eaac9b3ae0da6a686801a4c06ac96a3f50d215e8f9e26b5c5"
	k, f, err := quote.Parse(ev.Raw)
	if err != nil || k != quote.TDX {
		t.Fatalf("parse: %v %v", k, err)
	}
	if f["report_data"] != hex.EncodeToString(rd[:]) || f["rtmr3"] != wantRTMR3 || f["debug"] != false {
		t.Fatalf("fields: %v", f)
	}
	if got := hex.EncodeToString(ev.Raw[0x238 : 0x238+64]); got != hex.EncodeToString(rd[:]) {
		t.Fatal("report_data not at offset 0x238")
	}
	q, err := tdxabi.QuoteToProto(ev.Raw)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range readCerts(t, filepath.Join(dir, simtee.TDXRootFile)) {
		pool.AddCert(c)
	}
	if err := tdxverify.TdxQuote(q, &tdxverify.Options{TrustedRoots: pool}); err != nil {
		t.Fatalf("go-tdx-guest verify with the simulated root: %v", err)
	}
	if err := tdxverify.TdxQuote(q, tdxverify.DefaultOptions()); err == nil {
		t.Fatal("go-tdx-guest verify accepted a simulated quote with Intel's root")
	}
	// A flipped byte in the body breaks it.
	bad := append([]byte(nil), ev.Raw...)
	bad[0x30+136] ^= 1 // mr_td
	qb, _ := tdxabi.QuoteToProto(bad)
	if err := tdxverify.TdxQuote(qb, &tdxverify.Options{TrustedRoots: pool}); err == nil {
		t.Fatal("tampered quote verified")
	}
	// A second provider on the same state directory reuses the chain.
	p2, err := simtee.NewTDX(dir, simtee.Options{Workload: workload})
	if err != nil {
		t.Fatal(err)
	}
	ev2, _ := p2.Quote(context.Background(), rd)
	q2, _ := tdxabi.QuoteToProto(ev2.Raw)
	if err := tdxverify.TdxQuote(q2, &tdxverify.Options{TrustedRoots: pool}); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}

var snpDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "teesign-snp-") })

func TestSimSNPVerifiesOnlyWithSimRoots(t *testing.T) {
	dir, err := snpDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p, err := simtee.NewSNP(dir, simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Raw) != quote.SNPReportSize {
		t.Fatalf("report is %d bytes", len(ev.Raw))
	}
	k, f, err := quote.Parse(ev.Raw)
	if err != nil || k != quote.SEVSNP || f["debug"] != false || f["report_data"] != hex.EncodeToString(rd[:]) {
		t.Fatalf("parse: %v %v %v", k, f, err)
	}
	att, err := sevabi.ReportCertsToProto(append(append([]byte(nil), ev.Raw...), ev.CertTable...))
	if err != nil {
		t.Fatal(err)
	}
	roots := readCerts(t, filepath.Join(dir, simtee.SNPRootFile))
	r := trust.AMDRootCertsProduct(simtee.SNPProduct)
	r.ProductCerts = &trust.ProductCerts{Ark: roots[0], Ask: roots[1]}
	opts := &sevverify.Options{DisableCertFetching: true, Now: time.Now(), TrustedRoots: map[string][]*trust.AMDRootCerts{simtee.SNPProduct: {r}}}
	if err := sevverify.SnpAttestation(att, opts); err != nil {
		t.Fatalf("go-sev-guest verify with the simulated roots: %v", err)
	}
	if err := sevverify.SnpAttestation(att, &sevverify.Options{DisableCertFetching: true, Now: time.Now()}); err == nil {
		t.Fatal("go-sev-guest verify accepted the simulated report with AMD's roots")
	}
	bad := append([]byte(nil), ev.Raw...)
	bad[0x90] ^= 1
	attBad, _ := sevabi.ReportCertsToProto(append(bad, ev.CertTable...))
	if err := sevverify.SnpAttestation(attBad, opts); err == nil {
		t.Fatal("tampered report verified")
	}
}

// With a docker-files archive its digest is the third entry (vector from
// Python's hashlib).
func TestRTMR3WithDockerFiles(t *testing.T) {
	df := sha256.Sum256([]byte("docker files"))
	m := simtee.TDXImageMeasurements([][]byte{[]byte("services: {}\n")}, "", df[:])
	if m["rtmr3"] != "d21f407658417c0ca6a154fef7f4f2af212ff7dee156d668eccda004a037bc1c293d0c2d73eab62e59c38d9dfcbbc26a" {
		t.Fatalf("rtmr3 %s", m["rtmr3"])
	}
}
