// Package verify checks that a signature came from a key bound into an
// Intel TDX or AMD SEV-SNP attestation quote: the quote's hardware
// signature chain up to Intel's or AMD's root, its measurements against a
// policy (package validate), the key binding in report_data, and the
// signature itself. Each check is reported by name.
package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	sevabi "github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/workload"
)

//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// Check names, in the order they run and are reported.
const (
	CheckQuoteSignature = "quote_signature"
	CheckCertChain      = "cert_chain"
	CheckTCBStatus      = "tcb_status"
	CheckPolicy         = "policy"
	CheckWorkload       = "workload"
	CheckKeyBinding     = "key_binding"
	CheckSignature      = "signature"
)

// Outcomes of a check.
const (
	Pass      = "pass"
	Fail      = "fail"
	Unchecked = "unchecked"
	Skipped   = "skipped"
)

// Check is one check's outcome.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Rules name what failed, for checks made of several rules: the
	// policy's violated fields and hygiene rules (package validate), or
	// the part of the collateral that failed (RuleQEIdentity, ...).
	Rules []string `json:"rules,omitempty"`
}

// Result is the outcome of Verify.
type Result struct {
	// Valid is true only when no check failed: the quote is genuine
	// hardware evidence under a trusted root, the workload it measures is
	// the one pinned (or AnyWorkload was asked for, and AnyWorkload is
	// then true), it binds the public key, and the key made the signature.
	Valid bool `json:"valid"`
	// TEE is "tdx" or "sev-snp" ("" when the quote could not be read).
	TEE string `json:"tee"`
	// KeyType is the algorithm checked.
	KeyType string `json:"key_type"`
	// Checks are every check, in order.
	Checks []Check `json:"checks"`
	// AnyWorkload is true when the workload was not pinned and any
	// workload was accepted on request (Options.AnyWorkload).
	AnyWorkload bool `json:"any_workload,omitempty"`
	// Workload is the SecretVM build and workload check (Options.Workload).
	Workload *workload.Result `json:"workload,omitempty"`
	// Measurements are the quote's fields (lowercase hex).
	Measurements map[string]any `json:"measurements,omitempty"`
	// PublicKey is the bound public key as PEM.
	PublicKey string `json:"public_key,omitempty"`
	// EthereumAddress is the EIP-55 address of a bound secp256k1 key.
	EthereumAddress string `json:"ethereum_address,omitempty"`
	// TCBStatus is the TDX platform's TCB status from the collateral
	// (UpToDate, OutOfDate, ...), or "" when unchecked.
	TCBStatus string `json:"tcb_status,omitempty"`
	// QEStatus is the TCB status of the TDX quoting enclave, or "".
	QEStatus string `json:"qe_status,omitempty"`
	// Signer is the address recovered from an Ethereum-format signature.
	Signer string `json:"signer,omitempty"`
}

// Signature formats.
const (
	// FormatDER is a DER ECDSA (secp256k1) or raw (ed25519) signature over
	// the message.
	FormatDER = "der"
	// FormatEthPersonalSign is a 65-byte r‖s‖v signature over the EIP-191
	// personal message hash of the message.
	FormatEthPersonalSign = "eth_personal_sign"
	// FormatEthRaw is a 65-byte r‖s‖v signature over a 32-byte digest: the
	// message is the digest itself.
	FormatEthRaw = "eth_raw"
)

// Options tune Verify. The zero value verifies a secp256k1 signature
// against Intel's and AMD's roots with collateral from Intel PCS and AMD
// KDS, and reports it invalid: the workload must be pinned (Policy) or
// any workload accepted explicitly (AnyWorkload).
type Options struct {
	// KeyType is "secp256k1" or "ed25519"; "" means the type of
	// PublicKeyPEM when given, else secp256k1.
	KeyType string
	// PublicKeyPEM, when set, must be the key bound in the quote.
	PublicKeyPEM []byte
	// Policy pins the workload's measurements and sets hygiene rules and
	// accepted TCB statuses. Without a policy that pins the quote's
	// workload (validate.Policy.PinsWorkload), the policy check fails
	// unless AnyWorkload is set.
	Policy *validate.Policy
	// Workload checks the quote against a registry of official builds
	// and a compose file (package workload); it pins the workload, and the
	// workload check passes only on authentic_match.
	Workload *WorkloadCheck
	// AnyWorkload accepts a quote whose workload no policy pins. The
	// result then says "any workload accepted" and sets AnyWorkload: it
	// proves only that some workload on genuine hardware made the
	// signature.
	AnyWorkload bool
	// TrustedCerts are extra certificates to trust (e.g. teesign's
	// sim-root.pem or sim-sev-snp-root.pem), told apart by what they are:
	// self-signed ECDSA CA certificates are Intel-style roots; AMD's roles
	// as AMD describes them (see AMDCerts). A certificate that fits no role
	// is an error.
	TrustedCerts []*x509.Certificate
	// AMD gives SEV-SNP trust certificates by role; they are added to
	// those found in TrustedCerts.
	AMD AMDCerts
	// Trust is TrustedCerts and AMD sorted by role once (NewTrust), for a
	// caller that verifies many quotes under the same roots; when set,
	// TrustedCerts and AMD must be empty.
	Trust *Trust
	// CertTable is a SEV-SNP certificate table (AMD's GUID table, as the
	// host returns it with an extended report and teesign serves it in
	// /attestation as cert_table). Only its VCEK or VLEK is used, and only
	// after it chains to a trusted root.
	CertTable []byte
	// Offline skips collateral: tcb_status is reported as unchecked.
	Offline bool
	// Collateral says where to fetch collateral and where to cache it
	// (nil: Intel PCS and AMD KDS, no cache).
	Collateral *CollateralSource
	// Now is the time at which certificates and collateral must be valid
	// (default now).
	Now time.Time
	// Format is the signature's format: FormatDER (default),
	// FormatEthPersonalSign or FormatEthRaw (secp256k1 only).
	Format string
	// Cache, when set, keeps verdicts on quotes for later verifications
	// with the same inputs (see VerdictCache); nil checks every quote in
	// full.
	Cache *VerdictCache
}

// WorkloadCheck is a workload to check against a registry of builds.
type WorkloadCheck struct {
	// Registry holds the official builds (workload.Embedded, or
	// workload.Load of SecretVM's files).
	Registry *workload.Registry
	// Workload is the compose file (and docker-files digest) the VM is
	// expected to run.
	Workload workload.Workload
}

// ParseCerts reads every CERTIFICATE block of a PEM file.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("certificates: malformed PEM")
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificates: unexpected PEM block %q", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificates: %w", err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, errors.New("certificates: no CERTIFICATE block found")
	}
	return out, nil
}

type run struct {
	res    *Result
	failed bool
	// complete: every check is in (the quote could not be read).
	complete bool
}

func (r *run) add(name, status, reason string, rules ...string) {
	r.res.Checks = append(r.res.Checks, Check{Name: name, Status: status, Reason: reason, Rules: rules})
	if status == Fail {
		r.failed = true
	}
}

// UnpinnedReason is the policy check's reason when nothing pins the
// workload.
const UnpinnedReason = "the workload is not pinned, so any workload on a genuine machine would pass: " +
	"give a policy that pins its measurements (--policy FILE, Options.Policy), " +
	"a compose file to check against the registry of SecretVM builds (--compose FILE, Options.Workload), " +
	"or accept any workload explicitly (--any-workload, Options.AnyWorkload)"

// RuleUnpinned is the policy rule that fails when nothing pins the
// workload.
const RuleUnpinned = "workload_pinned"

// Verify checks quoteText (raw, hex or base64), message and signature. It
// returns an error only for unusable options (including a trusted
// certificate that fits no role); a quote, key or signature that fails is
// reported in the Result with Valid false.
func Verify(ctx context.Context, quoteText, message, signature []byte, o Options) (*Result, error) {
	rs, err := VerifyBatch(ctx, quoteText, []Signed{{Message: message, Signature: signature}}, o)
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// Signed is a message and its signature.
type Signed struct {
	Message, Signature []byte
}

// VerifyBatch checks one quote once (chain, collateral, policy, workload,
// key binding) and then each message and signature against the key it
// binds: one Result per item, in order, sharing every check but the
// signature's. Verifying many messages of one quote costs about one
// signature verification each.
func VerifyBatch(ctx context.Context, quoteText []byte, items []Signed, o Options) ([]*Result, error) {
	r, pub, err := verifyQuote(ctx, quoteText, &o)
	if err != nil {
		return nil, err
	}
	out := make([]*Result, len(items))
	for i, it := range items {
		res := *r.res
		res.Checks = append([]Check(nil), r.res.Checks...)
		item := &run{res: &res, failed: r.failed}
		switch {
		case r.complete:
		case pub == nil:
			item.add(CheckSignature, Skipped, "no bound public key")
		default:
			if err := checkSignature(item.res, pub, o.Format, it.Message, it.Signature); err != nil {
				item.add(CheckSignature, Fail, err.Error())
			} else {
				item.add(CheckSignature, Pass, "")
			}
		}
		res.Valid = !item.failed
		out[i] = &res
	}
	return out, nil
}

func verifyQuote(ctx context.Context, quoteText []byte, o *Options) (*run, *keys.PublicKey, error) {
	var wantKey *keys.PublicKey
	if o.PublicKeyPEM != nil {
		k, err := keys.ParsePublicKeyPEM(o.PublicKeyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("expected public key (Options.PublicKeyPEM): %w", err)
		}
		wantKey = k
	}
	alg := keys.DefaultAlg
	switch {
	case o.KeyType != "":
		a, err := keys.ParseAlg(o.KeyType)
		if err != nil {
			return nil, nil, err
		}
		alg = a
		if wantKey != nil && wantKey.Alg() != a {
			return nil, nil, fmt.Errorf("key type %s disagrees with the %s public key given", a, wantKey.Alg())
		}
	case wantKey != nil:
		alg = wantKey.Alg()
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch o.Format {
	case "", FormatDER:
	case FormatEthPersonalSign, FormatEthRaw:
		if alg != keys.Secp256k1 {
			return nil, nil, fmt.Errorf("format %s needs key type secp256k1", o.Format)
		}
	default:
		return nil, nil, fmt.Errorf("unknown signature format %q: use der, eth_personal_sign or eth_raw", o.Format)
	}
	if o.Policy != nil {
		if err := o.Policy.Validate(); err != nil {
			return nil, nil, err
		}
	}
	if o.Workload != nil && o.Workload.Registry == nil {
		return nil, nil, errors.New("Options.Workload needs a Registry (workload.Embedded or workload.Load)")
	}
	trust := o.Trust
	switch {
	case trust == nil:
		t, err := NewTrust(o.TrustedCerts, o.AMD)
		if err != nil {
			return nil, nil, err
		}
		trust = t
	case len(o.TrustedCerts) > 0 || o.AMD != (AMDCerts{}):
		return nil, nil, errors.New("Options.Trust is set together with TrustedCerts or AMD: give the certificates to NewTrust instead")
	default:
		// The verdict cache keys on the certificates themselves.
		o.TrustedCerts, o.AMD = trust.certs, trust.amd
	}
	trusted := trust.set
	r := &run{res: &Result{KeyType: string(alg)}}
	raw, kind, err := quote.Decode(quoteText)
	var parsed *quote.Parsed
	if err == nil {
		parsed, err = quote.ParseAll(raw)
	}
	if err != nil {
		r.add(CheckQuoteSignature, Fail, "cannot read the quote: "+err.Error())
		names := []string{CheckCertChain, CheckTCBStatus, CheckPolicy, CheckKeyBinding, CheckSignature}
		if o.Workload != nil {
			names = []string{CheckCertChain, CheckTCBStatus, CheckPolicy, CheckWorkload, CheckKeyBinding, CheckSignature}
		}
		for _, n := range names {
			r.add(n, Skipped, "the quote could not be read")
		}
		r.complete = true
		return r, nil, nil
	}
	r.res.TEE = string(kind)
	fields := parsed.Fields
	r.res.Measurements = fields
	if o.Workload != nil && o.Workload.Registry.Empty(string(kind)) {
		return nil, nil, fmt.Errorf("%s has no %s build: pass SecretVM's registry files with --registry DIR (workload.Load)", o.Workload.Registry.Source, kind)
	}
	var cacheKey [32]byte
	cacheable := false
	if o.Cache != nil {
		if cacheKey, cacheable = verdictKey(raw, o, alg, wantKey); cacheable {
			v, err := o.Cache.lookup(ctx, cacheKey, o.Now)
			if err != nil {
				return nil, nil, err
			}
			if v != nil {
				res := *v.res
				res.Checks = append([]Check(nil), v.res.Checks...)
				return &run{res: &res, failed: v.failed}, v.pub, nil
			}
			defer o.Cache.release(cacheKey)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	// 1. quote_signature and cert_chain; 2. tcb_status; 3. policy.
	var f *fetcher
	if !o.Offline {
		f = newFetcher(ctx, o.Collateral, o.Now)
	}
	var ev evidence
	if kind == quote.TDX {
		ev = checkTDX(ctx, parsed.TDX, *o, trusted, f)
	} else {
		ev = checkSNP(ctx, raw, parsed.SNP, *o, trusted, f)
	}
	if ev.sigErr != nil {
		r.add(CheckQuoteSignature, Fail, ev.sigErr.Error())
	} else {
		r.add(CheckQuoteSignature, Pass, "")
	}
	if ev.chainErr != nil {
		r.add(CheckCertChain, Fail, ev.chainErr.Error())
	} else {
		r.add(CheckCertChain, Pass, "")
	}
	pol := o.Policy
	tcb := ev.tcb
	switch {
	case o.Offline:
		r.add(CheckTCBStatus, Unchecked, "offline: TCB info, QE identity and CRLs were not fetched")
	case ev.chainErr != nil || ev.sigErr != nil:
		r.add(CheckTCBStatus, Skipped, "the quote is not authentic")
	case tcb.err != nil:
		r.res.TCBStatus, r.res.QEStatus = tcb.status, tcb.qeStatus
		r.add(CheckTCBStatus, Fail, tcb.err.Error(), tcb.rule)
	case tcb.status == "":
		r.add(CheckTCBStatus, Pass, tcb.detail)
	default:
		r.res.TCBStatus, r.res.QEStatus = tcb.status, tcb.qeStatus
		reason := fmt.Sprintf("TDX TCB %s, QE TCB %s", tcb.status, tcb.qeStatus)
		if pol.TCBAccepted(tcb.status) && pol.TCBAccepted(tcb.qeStatus) {
			r.add(CheckTCBStatus, Pass, reason)
		} else {
			r.add(CheckTCBStatus, Fail, fmt.Sprintf("%s: not accepted by the policy (accepted_tcb_status: %s)", reason, strings.Join(pol.AcceptedTCBStatusOrDefault(), ", ")), RuleTCBStatus)
		}
	}
	r.policy(string(kind), ev.policyErr, pol, o.AnyWorkload, o.Workload != nil)
	if o.Workload != nil {
		wr := checkWorkload(raw, kind, o.Workload)
		r.res.Workload = &wr
		switch {
		case wr.Status == workload.AuthenticMatch:
			r.add(CheckWorkload, Pass, fmt.Sprintf("SecretVM %s %s (%s) running this compose file", wr.Template, wr.ArtifactsVersion, wr.Env))
		default:
			r.add(CheckWorkload, Fail, wr.Status+": "+wr.Reason, wr.Status)
		}
	}
	// 4. key_binding.
	rd, _ := hex.DecodeString(fmt.Sprint(fields["report_data"]))
	pub, err := keys.PublicKeyFromReportData(alg, rd)
	switch {
	case err != nil:
		reason := err.Error()
		if n := quote.Note(quoteText); n != "" {
			reason += " (" + n + ")"
		}
		r.add(CheckKeyBinding, Fail, reason)
	case wantKey != nil && !wantKey.Equal(pub):
		r.add(CheckKeyBinding, Fail, "the given public key is not the one the quote binds")
	default:
		r.add(CheckKeyBinding, Pass, "")
		r.res.PublicKey = string(pub.MarshalPEM())
		if alg == keys.Secp256k1 {
			r.res.EthereumAddress, _ = pub.EthAddress()
		}
	}
	if cacheable {
		r.remember(o, cacheKey, pub, ev, f)
	}
	return r, pub, nil
}

// remember keeps the verdict of an authentic quote whose collateral was
// read (or not asked for), until what it relied on expires.
func (r *run) remember(o *Options, key [32]byte, pub *keys.PublicKey, ev evidence, f *fetcher) {
	status := map[string]string{}
	for _, c := range r.res.Checks {
		status[c.Name] = c.Status
	}
	if status[CheckQuoteSignature] != Pass || status[CheckCertChain] != Pass || (status[CheckTCBStatus] != Pass && status[CheckTCBStatus] != Unchecked) || ev.certs.till.IsZero() {
		return
	}
	w := ev.certs
	if f != nil {
		cs, ok := f.collateralSpan()
		if !ok {
			return
		}
		w = w.narrow(cs)
	}
	if o.Now.Before(w.from) || !o.Now.Before(w.till) {
		return
	}
	res := *r.res
	res.Checks = append([]Check(nil), r.res.Checks...)
	o.Cache.put(&verdict{key: key, from: w.from, till: w.till, res: &res, pub: pub, failed: r.failed})
}

// policy adds the policy check: the policy's verdict on the quote
// (measurements and hygiene), and whether the workload is pinned.
func (r *run) policy(tee string, perr error, pol *validate.Policy, anyWorkload, composePinned bool) {
	var rules, reasons []string
	var verr *validate.Error
	switch {
	case errors.As(perr, &verr):
		rules, reasons = verr.Rules(), []string{verr.Error()}
	case perr != nil:
		rules, reasons = []string{"quote"}, []string{perr.Error()}
	}
	pinned := pol.PinsWorkload(tee) || composePinned
	if !pinned && !anyWorkload {
		rules = append(rules, RuleUnpinned)
		reasons = append(reasons, UnpinnedReason)
	}
	switch {
	case len(rules) > 0:
		r.add(CheckPolicy, Fail, strings.Join(reasons, "; "), rules...)
	case !pinned:
		r.res.AnyWorkload = true
		r.add(CheckPolicy, Pass, "any workload accepted")
	default:
		r.add(CheckPolicy, Pass, "")
	}
}

func checkSignature(res *Result, pub *keys.PublicKey, format string, message, signature []byte) error {
	if format != FormatEthPersonalSign && format != FormatEthRaw {
		return pub.Verify(message, signature)
	}
	digest := message
	if format == FormatEthPersonalSign {
		digest = keys.EthPersonalHash(message)
	} else if len(digest) != 32 {
		return fmt.Errorf("eth_raw: the message must be the 32-byte digest, not %d bytes", len(digest))
	}
	signer, err := keys.RecoverEth(digest, signature)
	if err != nil {
		return err
	}
	res.Signer, _ = signer.EthAddress()
	if !signer.Equal(pub) {
		return fmt.Errorf("the signature recovers %s, not the attested address %s: %w", res.Signer, res.EthereumAddress, keys.ErrBadSignature)
	}
	return nil
}

// checkWorkload runs the workload check on a structurally valid quote.
func checkWorkload(raw []byte, kind quote.Kind, wc *WorkloadCheck) workload.Result {
	res, err := wc.Registry.CheckQuote(raw, wc.Workload)
	if err != nil {
		return workload.Result{Status: workload.NotAuthentic, TEE: string(kind), Reason: err.Error()}
	}
	return res
}

// evidence is what the hardware checks found.
type evidence struct {
	chainErr, sigErr error
	tcb              tcbOutcome
	policyErr        error
	// certs is the window in which the certificates the checks used are
	// all valid.
	certs span
}

// tcbOutcome is what collateral said: TCB status names (TDX), or a
// detail when there is no status (SEV-SNP), or an error with the rule
// that failed.
type tcbOutcome struct {
	status, qeStatus, detail string
	rule                     string
	err                      error
}

// checkTDX checks the certificate chain (PCK → intermediate → a trusted
// root) and the quote signatures (quote by the attestation key, QE report
// by the PCK key, QE report data binding the attestation key), the latter
// against the quote's own root; then the collateral and the policy.
func checkTDX(ctx context.Context, q any, o Options, t *trustSet, f *fetcher) (ev evidence) {
	tq, err := validate.TDXQuoteOf(q)
	if err != nil {
		ev.policyErr = err
	} else {
		ev.policyErr = o.Policy.CheckTDX(tq)
	}
	pool := t.tdxRoots
	now := &tdxverify.TimeSet{PckCertChain: o.Now, TcbInfo: o.Now, QeIdentity: o.Now, PckCrl: o.Now, RootCaCrl: o.Now}
	// One pass checks the chain to a trusted root and every signature. Only
	// when it fails are the two told apart: the chain against the trusted
	// roots, the signatures against the quote's own root. The chain is
	// read again here (the library keeps its copy) only when something
	// needs it: a failure to explain, collateral to fetch, a verdict to
	// keep.
	passed := tdxverify.TdxQuote(q, &tdxverify.Options{TrustedRoots: pool, Now: now})
	if passed == nil && f == nil && o.Cache == nil {
		return ev
	}
	chain, err := tdxverify.ExtractChainFromQuote(q)
	if err != nil {
		err = fmt.Errorf("PCK certificate chain: %w", err)
		ev.chainErr, ev.sigErr = err, err
		return ev
	}
	ev.certs = certSpan(chain.PCKCertificate, chain.IntermediateCertificate, chain.RootCertificate)
	if passed != nil {
		inter := x509.NewCertPool()
		inter.AddCert(chain.IntermediateCertificate)
		if _, err := chain.PCKCertificate.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: o.Now}); err != nil {
			ev.chainErr = fmt.Errorf("the PCK certificate does not chain to a trusted root (Intel SGX Root CA, or Options.TrustedCerts: --trust-root) at %s: %w", o.Now.UTC().Format(time.RFC3339), err)
		}
		own := x509.NewCertPool()
		own.AddCert(chain.RootCertificate)
		ev.sigErr = tdxverify.TdxQuote(q, &tdxverify.Options{TrustedRoots: own, Now: now})
		if errors.Join(ev.chainErr, ev.sigErr) == nil {
			// The pieces pass where the whole did not: report the whole.
			ev.sigErr = passed
		}
	}
	if f != nil && ev.chainErr == nil && ev.sigErr == nil {
		ev.tcb = tdxTCB(ctx, q, chain, pool, f, o.Now)
	}
	return ev
}

func checkSNP(ctx context.Context, raw []byte, report *spb.Report, o Options, t *trustSet, f *fetcher) (ev evidence) {
	ev.policyErr = o.Policy.CheckSNP(validate.SNPReportOf(report))
	fail := func(err error) evidence {
		ev.chainErr, ev.sigErr = err, err
		return ev
	}
	info, err := sevabi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return fail(fmt.Errorf("signer_info: %w", err))
	}
	vlek := info.SigningKey == sevabi.VlekReportSigner
	ekName := "VCEK"
	if vlek {
		ekName = "VLEK"
	}
	ek := t.endorsementKey(raw, vlek)
	if ek == nil && len(o.CertTable) > 0 {
		var table sevabi.CertTable
		if err := table.Unmarshal(o.CertTable); err != nil {
			return fail(fmt.Errorf("certificate table: %w", err))
		}
		g := sevabi.VcekGUID
		if vlek {
			g = sevabi.VlekGUID
		}
		der, err := table.GetByGUIDString(g)
		if err == nil {
			ek, err = x509.ParseCertificate(der)
		}
		if err != nil {
			return fail(fmt.Errorf("certificate table: %s: %w", ekName, err))
		}
	}
	roots := map[string][]*trust.AMDRootCerts{}
	for line, r := range trust.DefaultRootCerts {
		roots[line] = append(roots[line], r)
	}
	if ek == nil && f != nil && !vlek {
		att, err := sevverify.GetAttestationFromReportContext(ctx, report, &sevverify.Options{Getter: sevGetter{f}, TrustedRoots: roots, Now: o.Now})
		if err != nil {
			return fail(fmt.Errorf("fetch the VCEK from AMD KDS: %w", err))
		}
		if ek, err = x509.ParseCertificate(att.GetCertificateChain().GetVcekCert()); err != nil {
			return fail(fmt.Errorf("VCEK from AMD KDS: %w", err))
		}
	}
	if ek == nil {
		if vlek {
			return fail(errors.New("no VLEK certificate: the report is signed by a VLEK, which AMD KDS does not serve: pass it with --vcek or --trust-root (Options.AMD or TrustedCerts), or the host's certificate table"))
		}
		return fail(errors.New("no VCEK certificate: pass it with --vcek or --trust-root (Options.AMD or TrustedCerts), or the host's certificate table, or verify online to fetch it from AMD KDS"))
	}
	ica, ark := t.issuers(ek)
	if ark != nil && ica != nil {
		line := strings.TrimPrefix(ark.Subject.CommonName, "ARK-")
		r := trust.AMDRootCertsProduct(line)
		r.ProductCerts = &trust.ProductCerts{Ark: ark}
		if vlek {
			r.ProductCerts.Asvk = ica
		} else {
			r.ProductCerts.Ask = ica
		}
		roots[line] = append([]*trust.AMDRootCerts{r}, roots[line]...)
	}
	chain := &spb.CertificateChain{}
	if vlek {
		chain.VlekCert = ek.Raw
	} else {
		chain.VcekCert = ek.Raw
	}
	if ica != nil && !vlek {
		chain.AskCert = ica.Raw
	}
	if ark != nil {
		chain.ArkCert = ark.Raw
	}
	att := &spb.Attestation{Report: report, CertificateChain: chain}
	ev.certs = certSpan(ek, ica, ark)
	if err := sevverify.SnpReportSignature(raw, ek); err != nil {
		ev.sigErr = fmt.Errorf("the report's signature does not verify with the %s: %w", ekName, err)
	}
	if err := sevverify.SnpAttestationContext(ctx, att, &sevverify.Options{DisableCertFetching: true, Now: o.Now, TrustedRoots: roots}); err != nil && ev.sigErr == nil {
		ev.chainErr = fmt.Errorf("the %s does not chain to a trusted AMD root (or Options.TrustedCerts: --trust-root) at %s: %w", ekName, o.Now.UTC().Format(time.RFC3339), err)
	}
	if f != nil && ev.chainErr == nil && ev.sigErr == nil {
		opts := &sevverify.Options{DisableCertFetching: true, CheckRevocations: true, Getter: sevGetter{f}, Now: o.Now, TrustedRoots: roots}
		if err := sevverify.SnpAttestationContext(ctx, att, opts); err != nil {
			ev.tcb.rule, ev.tcb.err = RuleRevocation, fmt.Errorf("revocation check against AMD KDS's CRL: %w", err)
		} else {
			ev.tcb.detail = "the ASK and " + ekName + " are not revoked (CRL from AMD KDS); SEV-SNP has no TCB status: pin min_reported_tcb in the policy"
		}
	}
	return ev
}
