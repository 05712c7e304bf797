package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

// SEV-SNP trust certificates are told apart by what they are, or given by
// role; one that fits no role, or the wrong role, is an error.
func TestSNPTrustRoles(t *testing.T) {
	ctx := context.Background()
	dir, q, k := simSNP(t, keys.Ed25519)
	msg := []byte("roles")
	sig := k.Sign(msg)
	certs := trusted(t, filepath.Join(dir, simtee.SNPRootFile)) // ARK, ASK, VCEK
	ark, ask, vcek := certs[0], certs[1], certs[2]
	opts := func(o verify.Options) verify.Options {
		o.KeyType, o.Offline, o.AnyWorkload = "ed25519", true, true
		return o
	}
	// Sorted by what they are, in any order, mixed with a TDX root.
	tdxDir, _, _ := simTDX(t, keys.Ed25519, nil)
	tdxRoot := trusted(t, filepath.Join(tdxDir, simtee.TDXRootFile))
	mixed := append(append([]*x509.Certificate{vcek, tdxRoot[0]}, ask), ark)
	res, err := verify.Verify(ctx, q, msg, sig, opts(verify.Options{TrustedCerts: mixed}))
	if err != nil || !res.Valid {
		t.Fatalf("certificates by what they are: %v %+v", err, res)
	}
	// Given by role.
	res, err = verify.Verify(ctx, q, msg, sig, opts(verify.Options{AMD: verify.AMDCerts{ARK: ark, ASK: ask, VCEK: vcek}}))
	if err != nil || !res.Valid {
		t.Fatalf("certificates by role: %v %+v", err, res)
	}
	// The wrong role, or a certificate that fits none, is an error.
	for name, c := range map[string]struct {
		o    verify.Options
		want string
	}{
		"ASK given as VCEK":   {verify.Options{AMD: verify.AMDCerts{ARK: ark, ASK: ask, VCEK: ask}}, "is not an VCEK or VLEK (it is ASK or ASVK)"},
		"VCEK given as ARK":   {verify.Options{AMD: verify.AMDCerts{ARK: vcek, ASK: ask}}, "is not an ARK (it is VCEK or VLEK)"},
		"ARK given as ASK":    {verify.Options{AMD: verify.AMDCerts{ASK: ark}}, "is not an ASK or ASVK (it is ARK)"},
		"ASK without its ARK": {verify.Options{TrustedCerts: []*x509.Certificate{ask, vcek}}, ""},
	} {
		if _, err := verify.Verify(ctx, q, msg, sig, opts(c.o)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
	}
	// A leaf named like a VCEK but without AMD's extensions fits no role.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "SEV-VCEK"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	stray, _ := x509.ParseCertificate(der)
	_, err = verify.Verify(ctx, q, msg, sig, opts(verify.Options{TrustedCerts: []*x509.Certificate{ark, ask, vcek, stray}}))
	if err == nil || !strings.Contains(err.Error(), "fits no role") {
		t.Fatalf("a stray certificate among the trust roots: %v", err)
	}
}

// A real VLEK-signed report (confidential-containers/trustee's test data)
// verifies with its VLEK and AMD's Milan ARK and ASVK, at a time inside
// the VLEK's validity; with only the VCEK-signing ASK it does not.
func TestRealVLEKChain(t *testing.T) {
	report := testutil.Evidence(t, "trustee_snp_vlek_report.bin")
	vlek := trusted(t, filepath.Join(testutil.EvidenceDir(), "trustee_snp_vlek.pem"))
	amd := trusted(t, filepath.Join(testutil.EvidenceDir(), "trustee_milan_ask_ark_asvk.pem"))
	when := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	o := verify.Options{Offline: true, AnyWorkload: true, Now: when, TrustedCerts: append(append([]*x509.Certificate{}, amd...), vlek...)}
	res, err := verify.Verify(context.Background(), report, []byte("m"), []byte("s"), o)
	if err != nil {
		t.Fatal(err)
	}
	if status(res)["quote_signature"] != "pass" || status(res)["cert_chain"] != "pass" {
		t.Fatalf("VLEK chain: %+v", res.Checks)
	}
	// After the VLEK expired, the chain fails and says when.
	o.Now = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	res, _ = verify.Verify(context.Background(), report, []byte("m"), []byte("s"), o)
	if c := byName(res, "cert_chain"); c.Status != "fail" || !strings.Contains(c.Reason, "2026-11-30") {
		t.Fatalf("expired VLEK: %+v", c)
	}
	// A real Milan report signed by a VCEK verifies against AMD's own roots.
	hexReport := testutil.Evidence(t, "virtee-sev_report_milan.hex")
	vcek := trusted(t, filepath.Join(testutil.EvidenceDir(), "virtee-sev_vcek_milan.pem"))
	res, err = verify.Verify(context.Background(), hexReport, []byte("m"), []byte("s"), verify.Options{Offline: true, AnyWorkload: true, AMD: verify.AMDCerts{VCEK: vcek[0]}})
	if err != nil {
		t.Fatal(err)
	}
	if status(res)["quote_signature"] != "pass" || status(res)["cert_chain"] != "pass" {
		t.Fatalf("VCEK chain of a real Milan report: %+v", res.Checks)
	}
}

// TDX 1.5 fields of a real v5 quote (go-tdx-guest's sample) can be pinned.
func TestPinTDX15Fields(t *testing.T) {
	raw := testutil.Evidence(t, "go-tdx-guest_quote_v5_sample.bin")
	_, f, err := quote.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := hex.DecodeString(f["mr_servicetd"].(string))
	svn2, _ := hex.DecodeString(f["tee_tcb_svn2"].(string))
	mrtd, _ := hex.DecodeString(f["mr_td"].(string))
	pol := &validate.Policy{TDX: &validate.TDXPolicy{MRTD: []validate.Hex{mrtd}, MRServiceTD: []validate.Hex{svc}, TeeTCBSVN2: []validate.Hex{svn2}, Relax: []string{"debug", "reserved_attributes", "sept_ve_disable"}}}
	res, err := verify.Verify(context.Background(), raw, []byte("m"), []byte("s"), verify.Options{Offline: true, Policy: pol})
	if err != nil || status(res)["policy"] != "pass" {
		t.Fatalf("pinned to its own TDX 1.5 fields: %v %+v", err, res.Checks)
	}
	other := append([]byte{}, svc...)
	other[0] ^= 1
	pol.TDX.MRServiceTD = []validate.Hex{other}
	res, _ = verify.Verify(context.Background(), raw, []byte("m"), []byte("s"), verify.Options{Offline: true, Policy: pol})
	if c := byName(res, "policy"); c.Status != "fail" || !slices.Equal(c.Rules, []string{"mr_servicetd"}) {
		t.Fatalf("another MRSERVICETD: %+v", c)
	}
}

// AMD's own intermediates are trusted without their ARK: the ARKs
// go-sev-guest carries sign them. The real VLEK report verifies with its
// VLEK and AMD's Milan ASVK alone.
func TestAMDIntermediateWithoutItsARK(t *testing.T) {
	report := testutil.Evidence(t, "trustee_snp_vlek_report.bin")
	vlek := trusted(t, filepath.Join(testutil.EvidenceDir(), "trustee_snp_vlek.pem"))
	var given []*x509.Certificate
	for _, c := range trusted(t, filepath.Join(testutil.EvidenceDir(), "trustee_milan_ask_ark_asvk.pem")) {
		if !strings.HasPrefix(c.Subject.CommonName, "ARK-") {
			given = append(given, c)
		}
	}
	o := verify.Options{Offline: true, AnyWorkload: true, Now: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), TrustedCerts: append(given, vlek...)}
	res, err := verify.Verify(context.Background(), report, []byte("m"), []byte("s"), o)
	if err != nil {
		t.Fatalf("AMD's ASK and ASVK without the ARK: %v", err)
	}
	if status(res)["quote_signature"] != "pass" || status(res)["cert_chain"] != "pass" {
		t.Fatalf("VLEK chain through AMD's known ARK: %+v", res.Checks)
	}
}

// Of several VCEKs given, the one whose key signed the report is used;
// when only one is given, it is the one checked: a report it did not sign
// fails its signature check against it.
func TestTheVCEKThatSignedIsUsed(t *testing.T) {
	dir := t.TempDir()
	if _, err := simtee.NewSNP(dir, simtee.Options{}); err != nil {
		t.Fatal(err)
	}
	simVCEK := trusted(t, filepath.Join(dir, simtee.SNPRootFile))[2]
	milanVCEK := trusted(t, filepath.Join(testutil.EvidenceDir(), "virtee-sev_vcek_milan.pem"))[0]
	report := testutil.Evidence(t, "virtee-sev_report_milan.hex")
	o := verify.Options{Offline: true, AnyWorkload: true, TrustedCerts: []*x509.Certificate{simVCEK, milanVCEK}}
	res, err := verify.Verify(context.Background(), report, []byte("m"), []byte("s"), o)
	if err != nil {
		t.Fatal(err)
	}
	if status(res)["quote_signature"] != "pass" || status(res)["cert_chain"] != "pass" {
		t.Fatalf("the signing VCEK among two: %+v", res.Checks)
	}
	o.TrustedCerts = []*x509.Certificate{simVCEK}
	if res, err = verify.Verify(context.Background(), report, []byte("m"), []byte("s"), o); err != nil {
		t.Fatal(err)
	}
	if c := byName(res, "quote_signature"); c.Status != "fail" || !strings.Contains(c.Reason, "does not verify with the VCEK") {
		t.Fatalf("a report the one VCEK given did not sign: %+v", c)
	}
}

// A forged quote on a chain nobody trusts fails both checks, each for its
// own reason: cert_chain because the root is not trusted, quote_signature
// because the signature does not verify even under the quote's own root.
// A signature that verifies under its own root passes quote_signature.
func TestUntrustedChainAndForgedSignatureAreToldApart(t *testing.T) {
	_, q, k := simTDX(t, keys.Ed25519, nil) // its sim root is not given
	raw, _, err := quote.Decode(q)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	o := verify.Options{Offline: true, AnyWorkload: true, KeyType: "ed25519"}
	res, err := verify.Verify(context.Background(), q, msg, k.Sign(msg), o)
	if err != nil {
		t.Fatal(err)
	}
	if s := status(res); s["cert_chain"] != "fail" || s["quote_signature"] != "pass" {
		t.Fatalf("an authentic quote under an untrusted root: %+v", res.Checks)
	}
	forged := append([]byte(nil), raw...)
	forged[0x30+136] ^= 1 // MRTD
	res, err = verify.Verify(context.Background(), []byte(hex.EncodeToString(forged)), msg, k.Sign(msg), o)
	if err != nil {
		t.Fatal(err)
	}
	if c := byName(res, "cert_chain"); c.Status != "fail" || !strings.Contains(c.Reason, "does not chain to a trusted root") {
		t.Fatalf("cert_chain of a forged quote under an untrusted root: %+v", c)
	}
	if c := byName(res, "quote_signature"); c.Status != "fail" || strings.Contains(c.Reason, "PCK Certificate") {
		t.Fatalf("quote_signature of a forged quote under an untrusted root: %+v", c)
	}
}

// Trust sorted once verifies as the same certificates given per call, on
// both TEEs; it refuses what Verify refuses, cannot be mixed with
// certificates given per call, and a verdict kept under one Trust is not
// reused under another.
func TestTrustSortedOnce(t *testing.T) {
	ctx := context.Background()
	opts := func(o verify.Options) verify.Options {
		o.KeyType, o.Offline, o.AnyWorkload = "ed25519", true, true
		return o
	}
	snpDir, snpQ, k := simSNP(t, keys.Ed25519)
	msg := []byte("trust")
	snpSig := k.Sign(msg)
	amd := trusted(t, filepath.Join(snpDir, simtee.SNPRootFile)) // ARK, ASK, VCEK
	tdxDir, tdxQ, tdxMsg, tdxSig := simTDXQuote(t)
	tdxRoot := trusted(t, filepath.Join(tdxDir, simtee.TDXRootFile))

	byCerts, err := verify.NewTrust(append(slices.Clone(tdxRoot), amd...), verify.AMDCerts{})
	if err != nil {
		t.Fatal(err)
	}
	byRole, err := verify.NewTrust(tdxRoot, verify.AMDCerts{ARK: amd[0], ASK: amd[1], VCEK: amd[2]})
	if err != nil {
		t.Fatal(err)
	}
	for name, tr := range map[string]*verify.Trust{"certificates": byCerts, "roles": byRole} {
		for tee, c := range map[string]struct{ q, m, s []byte }{"tdx": {tdxQ, tdxMsg, tdxSig}, "sev-snp": {snpQ, msg, snpSig}} {
			res, err := verify.Verify(ctx, c.q, c.m, c.s, opts(verify.Options{Trust: tr}))
			if err != nil || !res.Valid {
				t.Errorf("%s, Trust by %s: %v %+v", tee, name, err, res)
			}
		}
	}
	// One Trust serves concurrent verifications of both TEEs (run with
	// -race to check that nothing in it is written).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			q, m, sg := tdxQ, tdxMsg, tdxSig
			if i%2 == 1 {
				q, m, sg = snpQ, msg, snpSig
			}
			if res, err := verify.Verify(ctx, q, m, sg, opts(verify.Options{Trust: byCerts})); err != nil || !res.Valid {
				t.Errorf("concurrent verification %d: %v %+v", i, err, res)
			}
		})
	}
	wg.Wait()
	// Without the simulated roots, nothing chains.
	none, err := verify.NewTrust(nil, verify.AMDCerts{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.Verify(ctx, tdxQ, tdxMsg, tdxSig, opts(verify.Options{Trust: none}))
	if err != nil || res.Valid || status(res)["cert_chain"] != "fail" {
		t.Errorf("empty Trust: %v %+v", err, res)
	}

	// What Verify refuses, NewTrust refuses with the same words.
	for name, c := range map[string]struct {
		certs []*x509.Certificate
		amd   verify.AMDCerts
	}{
		"ASK without its ARK": {[]*x509.Certificate{amd[1]}, verify.AMDCerts{}},
		"VCEK given as ARK":   {nil, verify.AMDCerts{ARK: amd[2]}},
	} {
		_, perCall := verify.Verify(ctx, snpQ, msg, snpSig, opts(verify.Options{TrustedCerts: c.certs, AMD: c.amd}))
		_, once := verify.NewTrust(c.certs, c.amd)
		if perCall == nil || once == nil || once.Error() != perCall.Error() {
			t.Errorf("%s: NewTrust %v, Verify %v", name, once, perCall)
		}
	}
	// Trust and certificates per call together are an error, either kind.
	for name, o := range map[string]verify.Options{
		"TrustedCerts": {Trust: byCerts, TrustedCerts: tdxRoot},
		"AMD":          {Trust: byCerts, AMD: verify.AMDCerts{VCEK: amd[2]}},
	} {
		if _, err := verify.Verify(ctx, tdxQ, tdxMsg, tdxSig, opts(o)); err == nil || !strings.Contains(err.Error(), "NewTrust") {
			t.Errorf("Trust with %s: %v, want an error naming NewTrust", name, err)
		}
	}

	// A verdict kept under one Trust is reused under the same Trust and
	// under the same certificates given per call, never under another.
	cache := verify.NewVerdictCache(0)
	check := func(o verify.Options, want bool) {
		t.Helper()
		o.Cache = cache
		before, _ := cache.Stats()
		res, err := verify.Verify(ctx, tdxQ, tdxMsg, tdxSig, opts(o))
		if err != nil {
			t.Fatal(err)
		}
		if after, _ := cache.Stats(); (after > before) != want {
			hit := after > before
			t.Errorf("verdict reused: %v, want %v (%+v)", hit, want, res.Checks)
		}
	}
	check(verify.Options{Trust: byRole}, false)
	check(verify.Options{Trust: byRole}, true)
	check(verify.Options{TrustedCerts: tdxRoot, AMD: verify.AMDCerts{ARK: amd[0], ASK: amd[1], VCEK: amd[2]}}, true)
	check(verify.Options{Trust: byCerts}, false)
	check(verify.Options{Trust: none}, false)
}
