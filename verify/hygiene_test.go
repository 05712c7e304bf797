package verify_test

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

// Each hygiene rule fails a genuine (simulated, re-signed) quote whose bit
// is flipped, by name, with the hardware checks passing; a policy that
// relaxes that rule by name accepts it.
func TestHygieneOnResignedQuotes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k, _ := keys.Generate(keys.Ed25519)
	msg := []byte("hygiene")
	sig := k.Sign(msg)
	tdx, err := simtee.NewTDX(dir, simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	snp, err := simtee.NewSNP(dir, simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tdxRoots := trusted(t, filepath.Join(dir, simtee.TDXRootFile))
	snpRoots := trusted(t, filepath.Join(dir, simtee.SNPRootFile))
	verifyQuote := func(ev *quote.Evidence, roots []*x509.Certificate, relax []string) *verify.Result {
		t.Helper()
		pol := &validate.Policy{TDX: &validate.TDXPolicy{Relax: relax}, SEVSNP: &validate.SNPPolicy{Relax: relax}}
		if ev.Kind == quote.TDX {
			pol.SEVSNP = nil
		} else {
			pol.TDX = nil
		}
		res, err := verify.Verify(ctx, quote.Encode(ev.Kind, ev.Raw), msg, sig, verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true, TrustedCerts: roots, Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"quote_signature", "cert_chain", "key_binding", "signature"} {
			if status(res)[n] != "pass" {
				t.Fatalf("%s = %s on a re-signed quote: %+v", n, status(res)[n], res.Checks)
			}
		}
		return res
	}
	attr := func(set, clear uint64) func(b *tdxpb.TDQuoteBody) {
		return func(b *tdxpb.TDQuoteBody) {
			a := binary.LittleEndian.Uint64(b.TdAttributes)
			binary.LittleEndian.PutUint64(b.TdAttributes, a&^clear|set)
		}
	}
	tdxCases := map[string]func(*tdxpb.TDQuoteBody){
		validate.RuleDebug:              attr(1<<0, 0),
		validate.RuleReservedAttributes: attr(1<<5, 0),
		validate.RuleSEPTVEDisable:      attr(0, 1<<28),
	}
	le := binary.LittleEndian
	snpCases := map[string]func([]byte){
		validate.RuleDebug:          func(r []byte) { le.PutUint64(r[0x08:], le.Uint64(r[0x08:])|1<<19) },
		validate.RuleMigrationAgent: func(r []byte) { le.PutUint64(r[0x08:], le.Uint64(r[0x08:])|1<<18) },
		validate.RuleSMT:            func(r []byte) { le.PutUint64(r[0x40:], 1) },
		validate.RuleCommittedTCB:   func(r []byte) { r[0x1E0+6]++ }, // committed SNP firmware SPL above current
		validate.RuleReportVersion:  func(r []byte) { le.PutUint32(r[0x00:], 1) },
	}
	if len(tdxCases) != len(validate.TDXRules) || len(snpCases) != len(validate.SNPRules) {
		t.Fatal("a hygiene rule has no test case")
	}
	for rule, edit := range tdxCases {
		ev, err := tdx.QuoteWith(ctx, k.Public().ReportData(), edit)
		if err != nil {
			t.Fatal(err)
		}
		res := verifyQuote(ev, tdxRoots, nil)
		if pc := byName(res, "policy"); res.Valid || !slices.Equal(pc.Rules, []string{rule}) {
			t.Errorf("tdx %s: valid %v, policy %+v", rule, res.Valid, pc)
		}
		if res := verifyQuote(ev, tdxRoots, []string{rule}); !res.Valid {
			t.Errorf("tdx %s relaxed: %+v", rule, res.Checks)
		}
	}
	for rule, edit := range snpCases {
		if rule == validate.RuleReportVersion {
			continue // below
		}
		ev, err := snp.QuoteWith(ctx, k.Public().ReportData(), edit)
		if err != nil {
			t.Fatal(err)
		}
		res := verifyQuote(ev, snpRoots, nil)
		if pc := byName(res, "policy"); res.Valid || !slices.Equal(pc.Rules, []string{rule}) {
			t.Errorf("sev-snp %s: valid %v, policy %+v", rule, res.Valid, pc)
		}
		if res := verifyQuote(ev, snpRoots, []string{rule}); !res.Valid {
			t.Errorf("sev-snp %s relaxed: %+v", rule, res.Checks)
		}
	}
	// A version-1 report is not even read as an SEV-SNP report: the rule
	// is checked in package validate, and here the quote is refused.
	ev, err := snp.QuoteWith(ctx, k.Public().ReportData(), snpCases[validate.RuleReportVersion])
	if err != nil {
		t.Fatal(err)
	}
	res, _ := verify.Verify(ctx, quote.Encode(ev.Kind, ev.Raw), msg, sig, verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true, TrustedCerts: snpRoots})
	if res.Valid || status(res)["quote_signature"] != "fail" {
		t.Fatalf("a version-1 report: %+v", res.Checks)
	}
}
