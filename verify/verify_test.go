package verify_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

func status(r *verify.Result) map[string]string {
	m := map[string]string{}
	for _, c := range r.Checks {
		m[c.Name] = c.Status
	}
	return m
}

// byName returns the named check of a result.
func byName(r *verify.Result, name string) verify.Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return verify.Check{}
}

func sample(t testing.TB) (quoteText []byte, k *keys.PrivateKey) {
	t.Helper()
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return testutil.SampleFile(t, "quote.txt"), k
}

func TestSecretVMSampleVerifies(t *testing.T) {
	q, k := sample(t)
	msg := []byte("My Secret Message")
	sig := k.Sign(msg)
	for _, pub := range [][]byte{nil, testutil.SampleFile(t, "public_key.pem")} {
		res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, KeyType: "ed25519", PublicKeyPEM: pub, AnyWorkload: true})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"quote_signature": "pass", "cert_chain": "pass", "tcb_status": "unchecked", "policy": "pass", "key_binding": "pass", "signature": "pass"}
		for n, s := range want {
			if status(res)[n] != s {
				t.Fatalf("%s = %s, want %s: %+v", n, status(res)[n], s, res.Checks)
			}
		}
		if !res.Valid || res.TEE != "tdx" || !res.AnyWorkload || byName(res, "policy").Reason != "any workload accepted" {
			t.Fatalf("%+v", res)
		}
	}
	// Nothing pinned, nothing accepted explicitly: invalid, and the reason
	// names the ways out.
	res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, KeyType: "ed25519"})
	if err != nil {
		t.Fatal(err)
	}
	pc := byName(res, "policy")
	if res.Valid || res.AnyWorkload || pc.Status != "fail" || !slices.Equal(pc.Rules, []string{verify.RuleUnpinned}) ||
		!strings.Contains(pc.Reason, "--policy") || !strings.Contains(pc.Reason, "--any-workload") {
		t.Fatalf("unpinned workload: valid %v, policy %+v", res.Valid, pc)
	}
	for _, n := range []string{"quote_signature", "cert_chain", "key_binding", "signature"} {
		if status(res)[n] != "pass" {
			t.Fatalf("%s = %s without a pin: %+v", n, status(res)[n], res.Checks)
		}
	}
	// The reference client's expected values, as a policy.
	pol, err := validate.Parse([]byte(`
tdx:
  tee_tcb_svn: ["07010300000000000000000000000000"]
  mr_seam: ["49b66faa451d19ebbdbe89371b8daf2b65aa3984ec90110343e9e2eec116af08850fa20e3b1aa9a874d77a65380ee7e6"]
  mr_td: ["1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e"]
  rtmr3: ["aff11dd6163203574cdf6841166e6d769e27897fc55ec63c87a8f4ae200781e7dc434318114fcabda19ce1af2ef0741a"]
`))
	if err != nil {
		t.Fatal(err)
	}
	res, _ = verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, KeyType: "ed25519", Policy: pol})
	if !res.Valid {
		t.Fatalf("policy of the sample's own values: %+v", res.Checks)
	}
	pol.TDX.RTMR3 = []validate.Hex{make([]byte, 48)}
	res, _ = verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, KeyType: "ed25519", Policy: pol})
	if pc := byName(res, "policy"); res.Valid || pc.Status != "fail" || !slices.Equal(pc.Rules, []string{"rtmr3"}) || !strings.Contains(pc.Reason, "rtmr3: is aff11dd6") {
		t.Fatalf("policy mismatch not reported: %+v", res.Checks)
	}
}

func TestTamperSuite(t *testing.T) {
	q, k := sample(t)
	raw, _, err := quote.Decode(q)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	sig := k.Sign(msg)
	check := func(name string, quoteText, m, s []byte, o verify.Options, failing string) {
		t.Helper()
		if o.KeyType == "" {
			o.KeyType = "ed25519"
		}
		o.AnyWorkload = true
		res, err := verify.Verify(context.Background(), quoteText, m, s, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Valid || status(res)[failing] != "fail" {
			t.Errorf("%s: want %s to fail, got %+v", name, failing, res.Checks)
		}
	}
	flip := func(off int) []byte {
		b := append([]byte(nil), raw...)
		b[off] ^= 0x01
		return []byte(hex.EncodeToString(b))
	}
	check("header byte", flip(10), msg, sig, verify.Options{Offline: true}, "quote_signature")
	check("mr_td byte", flip(0x30+136), msg, sig, verify.Options{Offline: true}, "quote_signature")
	check("rtmr3 byte", flip(0x30+472), msg, sig, verify.Options{Offline: true}, "quote_signature")
	check("quote signature", flip(0x27C+5), msg, sig, verify.Options{Offline: true}, "quote_signature")
	check("attestation key", flip(0x2BC+5), msg, sig, verify.Options{Offline: true}, "quote_signature")
	qeReport := 0x2BC + 64 + 6
	check("QE report", flip(qeReport+100), msg, sig, verify.Options{Offline: true}, "quote_signature")
	check("QE report signature", flip(qeReport+384+3), msg, sig, verify.Options{Offline: true}, "quote_signature")
	// A byte inside the PEM chain's base64 (well past its header).
	check("PCK chain", flip(len(raw)-400), msg, sig, verify.Options{Offline: true}, "cert_chain")
	// report_data replaced with another key: the quote signature breaks.
	other, _ := keys.Generate(keys.Ed25519)
	b := append([]byte(nil), raw...)
	rd := other.Public().ReportData()
	copy(b[0x238:], rd[:])
	check("report_data replaced", []byte(hex.EncodeToString(b)), msg, other.Sign(msg), verify.Options{Offline: true}, "quote_signature")
	check("truncated", []byte(hex.EncodeToString(raw[:len(raw)-100])), msg, sig, verify.Options{Offline: true}, "quote_signature")
	check("other message", q, []byte("n"), sig, verify.Options{Offline: true}, "signature")
	sig2 := append([]byte(nil), sig...)
	sig2[0] ^= 1
	check("other signature", q, msg, sig2, verify.Options{Offline: true}, "signature")
	check("other public key", q, msg, sig, verify.Options{Offline: true, PublicKeyPEM: other.Public().MarshalPEM()}, "key_binding")
	check("wrong key type", q, msg, sig, verify.Options{Offline: true, KeyType: "secp256k1"}, "key_binding")
	if _, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, KeyType: "secp256k1", PublicKeyPEM: other.Public().MarshalPEM()}); err == nil {
		t.Fatal("a key type that disagrees with the public key given is accepted")
	}
}

func TestSimulatedQuotes(t *testing.T) {
	workload := [][]byte{[]byte("services:\n  app:\n    image: x\n")}
	dir, qText, k := simTDX(t, keys.Secp256k1, workload)
	msg := []byte("hello")
	sig := k.Sign(msg)
	// Without the simulated root: cert_chain fails.
	res, _ := verify.Verify(context.Background(), qText, msg, sig, verify.Options{Offline: true, AnyWorkload: true})
	if res.Valid || status(res)["cert_chain"] != "fail" {
		t.Fatalf("simulated quote accepted without --trust-root: %+v", res.Checks)
	}
	rootPEM, _ := os.ReadFile(filepath.Join(dir, simtee.TDXRootFile))
	roots, err := verify.ParseCerts(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	m := simtee.TDXMeasurements(workload)
	h := func(f string) []validate.Hex { b, _ := hex.DecodeString(m[f]); return []validate.Hex{b} }
	pol := &validate.Policy{TDX: &validate.TDXPolicy{MRTD: h("mr_td"), MRSeam: h("mr_seam"), RTMR0: h("rtmr0"), RTMR1: h("rtmr1"), RTMR2: h("rtmr2"), RTMR3: h("rtmr3"), TeeTCBSVN: h("tee_tcb_svn")}}
	res, _ = verify.Verify(context.Background(), qText, msg, sig, verify.Options{Offline: true, TrustedCerts: roots, Policy: pol})
	if !res.Valid {
		t.Fatalf("simulated quote with its root and policy: %+v", res.Checks)
	}
	// Another workload's RTMR3 does not match.
	pol.TDX.RTMR3 = h("mr_seam")
	res, _ = verify.Verify(context.Background(), qText, msg, sig, verify.Options{Offline: true, TrustedCerts: roots, Policy: pol})
	if res.Valid || status(res)["policy"] != "fail" {
		t.Fatalf("other workload accepted: %+v", res.Checks)
	}

	snp, err := simtee.NewSNP(dir, simtee.Options{Workload: workload})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := snp.Quote(context.Background(), k.Public().ReportData())
	if err != nil {
		t.Fatal(err)
	}
	sText := quote.Encode(ev.Kind, ev.Raw)
	snpPEM, _ := os.ReadFile(filepath.Join(dir, simtee.SNPRootFile))
	snpCerts, err := verify.ParseCerts(snpPEM)
	if err != nil {
		t.Fatal(err)
	}
	sm, _ := hex.DecodeString(simtee.SNPMeasurements(workload)["measurement"])
	sp := &validate.Policy{SEVSNP: &validate.SNPPolicy{Measurement: []validate.Hex{sm}}}
	res, _ = verify.Verify(context.Background(), sText, msg, sig, verify.Options{Offline: true, TrustedCerts: snpCerts, Policy: sp})
	if !res.Valid || res.TEE != "sev-snp" {
		t.Fatalf("sim-sev-snp: %+v", res.Checks)
	}
	// Only the VCEK, no simulated ARK/ASK: the chain fails.
	res, _ = verify.Verify(context.Background(), sText, msg, sig, verify.Options{Offline: true, TrustedCerts: snpCerts[2:], Policy: sp})
	if res.Valid || status(res)["cert_chain"] != "fail" {
		t.Fatalf("sim-sev-snp without its roots: %+v", res.Checks)
	}
}

func TestEthPersonalSign(t *testing.T) {
	dir, q, k := simTDX(t, keys.Secp256k1, nil)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	msg := []byte("hello ethereum")
	sig, _ := k.SignEth(keys.EthPersonalHash(msg))
	addr, _ := k.Public().EthAddress()
	res, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, AnyWorkload: true, TrustedCerts: roots, Format: verify.FormatEthPersonalSign})
	if err != nil || !res.Valid || res.Signer != addr || res.EthereumAddress != addr {
		t.Fatalf("%v %+v", err, res)
	}
	other, _ := keys.Generate(keys.Secp256k1)
	sig2, _ := other.SignEth(keys.EthPersonalHash(msg))
	res, _ = verify.Verify(context.Background(), q, msg, sig2, verify.Options{Offline: true, AnyWorkload: true, TrustedCerts: roots, Format: verify.FormatEthPersonalSign})
	if res.Valid || status(res)["signature"] != "fail" {
		t.Fatalf("another signer accepted: %+v", res.Checks)
	}
	if _, err := verify.Verify(context.Background(), q, msg, sig, verify.Options{Offline: true, KeyType: "ed25519", Format: verify.FormatEthPersonalSign}); err == nil {
		t.Fatal("eth format with ed25519 accepted")
	}
}

// A SEV-SNP report verifies offline with the VCEK from the host's
// certificate table; a table cannot make its own ARK trusted.
func TestSNPCertTable(t *testing.T) {
	dir := t.TempDir()
	p, err := simtee.NewSNP(dir, simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keys.Generate(keys.Ed25519)
	ev, err := p.Quote(context.Background(), k.Public().ReportData())
	if err != nil {
		t.Fatal(err)
	}
	q := quote.Encode(ev.Kind, ev.Raw)
	msg := []byte("snp")
	roots, _ := os.ReadFile(filepath.Join(dir, simtee.SNPRootFile))
	certs, _ := verify.ParseCerts(roots)
	res, err := verify.Verify(context.Background(), q, msg, k.Sign(msg), verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true, TrustedCerts: certs[:2], CertTable: ev.CertTable})
	if err != nil || !res.Valid {
		t.Fatalf("%v %+v", err, res)
	}
	// The table holds the simulated ARK and ASK too, but without them as
	// trusted roots the chain fails.
	res, _ = verify.Verify(context.Background(), q, msg, k.Sign(msg), verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true, CertTable: ev.CertTable})
	if res.Valid || status(res)["cert_chain"] != "fail" {
		t.Fatalf("a certificate table made its own root trusted: %+v", res.Checks)
	}
	if _, err := verify.Verify(context.Background(), q, msg, nil, verify.Options{Offline: true, CertTable: []byte("junk")}); err != nil {
		t.Fatal(err)
	}
}

// A key binding that fails on an Azure HCL report says why (Azure's
// paravisor owns report_data); on other quotes the reason carries no note.
func TestKeyBindingReasonNotesAzure(t *testing.T) {
	hcl, err := os.ReadFile(filepath.Join(testutil.EvidenceDir(), "trustee_azure_snp_hcl_report.bin"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.Verify(context.Background(), hcl, []byte("m"), []byte("s"), verify.Options{Offline: true, AnyWorkload: true, KeyType: "secp256k1"})
	if err != nil {
		t.Fatal(err)
	}
	if kb := byName(res, "key_binding"); kb.Status != "fail" || !strings.Contains(kb.Reason, "Azure HCL report") {
		t.Fatalf("Azure HCL report: %+v", kb)
	}
	dir, q, _, _ := simTDXQuote(t)
	roots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	res, err = verify.Verify(context.Background(), q, []byte("m"), []byte("s"), verify.Options{Offline: true, AnyWorkload: true, KeyType: "secp256k1", TrustedCerts: roots})
	if err != nil {
		t.Fatal(err)
	}
	if kb := byName(res, "key_binding"); kb.Status != "fail" || strings.Contains(kb.Reason, "Azure") || strings.HasSuffix(kb.Reason, "()") {
		t.Fatalf("an ed25519 quote read as secp256k1: %+v", kb)
	}
}
