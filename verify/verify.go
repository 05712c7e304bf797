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
)

//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// Check names, in the order they run and are reported.
const (
	CheckQuoteSignature = "quote_signature"
	CheckCertChain      = "cert_chain"
	CheckTCBStatus      = "tcb_status"
	CheckPolicy         = "policy"
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
}

// Result is the outcome of Verify.
type Result struct {
	// Valid is true only when no check failed.
	Valid bool `json:"valid"`
	// TEE is "tdx" or "sev-snp" ("" when the quote could not be read).
	TEE string `json:"tee"`
	// KeyType is the algorithm checked.
	KeyType string `json:"key_type"`
	// Checks are every check, in order.
	Checks []Check `json:"checks"`
	// Measurements are the quote's fields (lowercase hex).
	Measurements map[string]any `json:"measurements,omitempty"`
	// PublicKey is the bound public key as PEM.
	PublicKey string `json:"public_key,omitempty"`
	// EthereumAddress is the EIP-55 address of a bound secp256k1 key.
	EthereumAddress string `json:"ethereum_address,omitempty"`
	// TCBStatus is the platform's TCB status from the collateral
	// (UpToDate, OutOfDate, ...), or "" when unchecked.
	TCBStatus string `json:"tcb_status,omitempty"`
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
// offline against Intel's and AMD's roots with no measurement policy.
type Options struct {
	// KeyType is "secp256k1" (default) or "ed25519".
	KeyType string
	// PublicKeyPEM, when set, must be the key bound in the quote.
	PublicKeyPEM []byte
	// Policy checks measurements; nil checks only debug-off.
	Policy *validate.Policy
	// TrustedCerts are extra certificates to trust (e.g. teesign's
	// sim-root.pem): self-signed ones become roots. For SEV-SNP they may
	// also hold the ASK and the VCEK.
	TrustedCerts []*x509.Certificate
	// CertTable is a SEV-SNP certificate table (AMD's GUID table, as the
	// host returns it with an extended report and teesign serves it in
	// /attestation as cert_table). Only its VCEK is used, and only after
	// it chains to a trusted root.
	CertTable []byte
	// Offline skips collateral: tcb_status is reported as unchecked.
	Offline bool
	// Collateral says where to fetch collateral and where to cache it
	// (nil: Intel PCS and AMD KDS, no cache).
	Collateral *CollateralSource
	// Now is the time at which certificates must be valid (default now).
	Now time.Time
	// Format is the signature's format: FormatDER (default),
	// FormatEthPersonalSign or FormatEthRaw (secp256k1 only).
	Format string
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
}

func (r *run) add(name, status, reason string) {
	r.res.Checks = append(r.res.Checks, Check{Name: name, Status: status, Reason: reason})
	if status == Fail {
		r.failed = true
	}
}

// Verify checks quoteText (hex or base64), message and signature. It
// returns an error only for unusable options; a quote, key or signature
// that fails is reported in the Result with Valid false.
func Verify(ctx context.Context, quoteText, message, signature []byte, o Options) (*Result, error) {
	alg := keys.DefaultAlg
	if o.KeyType != "" {
		a, err := keys.ParseAlg(o.KeyType)
		if err != nil {
			return nil, err
		}
		alg = a
	}
	var wantKey *keys.PublicKey
	if o.PublicKeyPEM != nil {
		k, err := keys.ParsePublicKeyPEM(o.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("expected public key (Options.PublicKeyPEM): %w", err)
		}
		wantKey = k
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch o.Format {
	case "", FormatDER:
	case FormatEthPersonalSign, FormatEthRaw:
		if alg != keys.Secp256k1 {
			return nil, fmt.Errorf("format %s needs key type secp256k1", o.Format)
		}
	default:
		return nil, fmt.Errorf("unknown signature format %q: use der, eth_personal_sign or eth_raw", o.Format)
	}
	r := &run{res: &Result{KeyType: string(alg)}}
	raw, kind, err := quote.Decode(quoteText)
	var fields quote.Fields
	if err == nil {
		_, fields, err = quote.Parse(raw)
	}
	if err != nil {
		r.add(CheckQuoteSignature, Fail, "cannot read the quote: "+err.Error())
		for _, n := range []string{CheckCertChain, CheckTCBStatus, CheckPolicy, CheckKeyBinding, CheckSignature} {
			r.add(n, Skipped, "the quote could not be read")
		}
		return r.res, nil
	}
	r.res.TEE = string(kind)
	r.res.Measurements = fields
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// 1. quote_signature and cert_chain; 2. tcb_status.
	var f *fetcher
	if !o.Offline {
		f = newFetcher(ctx, o.Collateral, o.Now)
	}
	var chainErr, sigErr error
	var tcb tcbOutcome
	if kind == quote.TDX {
		chainErr, sigErr, tcb = checkTDX(ctx, raw, o, f)
	} else {
		chainErr, sigErr, tcb = checkSNP(ctx, raw, o, f)
	}
	if sigErr != nil {
		r.add(CheckQuoteSignature, Fail, sigErr.Error())
	} else {
		r.add(CheckQuoteSignature, Pass, "")
	}
	if chainErr != nil {
		r.add(CheckCertChain, Fail, chainErr.Error())
	} else {
		r.add(CheckCertChain, Pass, "")
	}
	pol := o.Policy
	if pol == nil {
		pol = &validate.Policy{}
	}
	switch {
	case o.Offline:
		r.add(CheckTCBStatus, Unchecked, "offline: TCB info, QE identity and CRLs were not fetched")
	case chainErr != nil || sigErr != nil:
		r.add(CheckTCBStatus, Skipped, "the quote is not authentic")
	case tcb.err != nil:
		r.add(CheckTCBStatus, Fail, tcb.err.Error())
	case tcb.status == "":
		r.add(CheckTCBStatus, Pass, tcb.detail)
	default:
		r.res.TCBStatus = tcb.status
		if pol.TCBAccepted(tcb.status) {
			r.add(CheckTCBStatus, Pass, tcb.status)
		} else {
			r.add(CheckTCBStatus, Fail, fmt.Sprintf("TCB status %s is not accepted by the policy (accepted_tcb_status: %s)", tcb.status, strings.Join(pol.AcceptedTCBStatusOrDefault(), ", ")))
		}
	}
	// 3. policy.
	if err := pol.Check(string(kind), fields); err != nil {
		r.add(CheckPolicy, Fail, err.Error())
	} else {
		r.add(CheckPolicy, Pass, "")
	}
	// 4. key_binding.
	rd, _ := hex.DecodeString(fmt.Sprint(fields["report_data"]))
	pub, err := keys.PublicKeyFromReportData(alg, rd)
	switch {
	case err != nil:
		r.add(CheckKeyBinding, Fail, err.Error())
	case wantKey != nil && !wantKey.Equal(pub):
		r.add(CheckKeyBinding, Fail, "the given public key is not the one the quote binds")
	default:
		r.add(CheckKeyBinding, Pass, "")
		r.res.PublicKey = string(pub.MarshalPEM())
		if alg == keys.Secp256k1 {
			r.res.EthereumAddress, _ = pub.EthAddress()
		}
	}
	// 5. signature.
	if pub == nil {
		r.add(CheckSignature, Skipped, "no bound public key")
	} else if err := checkSignature(r.res, pub, o.Format, message, signature); err != nil {
		r.add(CheckSignature, Fail, err.Error())
	} else {
		r.add(CheckSignature, Pass, "")
	}
	r.res.Valid = !r.failed
	return r.res, nil
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

func intelRoot() *x509.Certificate {
	b, _ := pem.Decode(intelRootPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic("verify: embedded Intel root: " + err.Error())
	}
	return c
}

// checkTDX returns the certificate chain's error (PCK → intermediate → a
// trusted root) and the quote signatures' error (quote by the attestation
// key, QE report by the PCK key, QE report data binding the attestation
// key), the latter checked against the quote's own root.
func checkTDX(ctx context.Context, raw []byte, o Options, f *fetcher) (chainErr, sigErr error, tcb tcbOutcome) {
	q, err := quote.ParseTDX(raw)
	if err != nil {
		return err, err, tcb
	}
	chain, err := tdxverify.ExtractChainFromQuote(q)
	if err != nil {
		err = fmt.Errorf("PCK certificate chain: %w", err)
		return err, err, tcb
	}
	pool := x509.NewCertPool()
	pool.AddCert(intelRoot())
	for _, c := range o.TrustedCerts {
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			pool.AddCert(c)
		}
	}
	inter := x509.NewCertPool()
	inter.AddCert(chain.IntermediateCertificate)
	if _, err := chain.PCKCertificate.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: o.Now}); err != nil {
		chainErr = fmt.Errorf("the PCK certificate does not chain to a trusted root (Intel SGX Root CA, or Options.TrustedCerts: --trust-root): %w", err)
	}
	own := x509.NewCertPool()
	own.AddCert(chain.RootCertificate)
	now := &tdxverify.TimeSet{PckCertChain: o.Now, TcbInfo: o.Now, QeIdentity: o.Now, PckCrl: o.Now, RootCaCrl: o.Now}
	if err := tdxverify.TdxQuote(q, &tdxverify.Options{TrustedRoots: own, Now: now}); err != nil {
		sigErr = err
	}
	if f != nil && chainErr == nil && sigErr == nil {
		tcb = tdxTCB(ctx, q, pool, f, now)
	}
	return chainErr, sigErr, tcb
}

// tcbOutcome is what collateral said: a TCB status name (TDX), or a
// detail when there is no status (SEV-SNP), or an error.
type tcbOutcome struct {
	status, detail string
	err            error
}

// tdxTCB fetches and checks the collateral (TCB info, QE identity, PCK and
// root CRLs, each signed under the trusted root) and returns the TCB status
// of the matching TCB level, the QE's when the platform's is UpToDate.
func tdxTCB(ctx context.Context, q any, pool *x509.CertPool, f *fetcher, now *tdxverify.TimeSet) tcbOutcome {
	opts := &tdxverify.Options{GetCollateral: true, CheckRevocations: true, Getter: f, TrustedRoots: pool, Now: now}
	verr := tdxverify.TdxQuoteContext(ctx, q, opts)
	level, qe, lerr := tdxverify.SupportedTcbLevelsFromCollateral(q, opts)
	if lerr != nil {
		if verr == nil {
			verr = lerr
		}
		return tcbOutcome{err: fmt.Errorf("collateral: %w", verr)}
	}
	status := string(level.TcbStatus)
	if status == "UpToDate" && qe.TcbStatus != "UpToDate" {
		status = "QE:" + string(qe.TcbStatus)
	}
	if verr != nil && (status == "UpToDate" || !strings.Contains(verr.Error(), "TCB status")) {
		return tcbOutcome{status: status, err: fmt.Errorf("collateral: %w", verr)}
	}
	return tcbOutcome{status: status}
}

func checkSNP(ctx context.Context, raw []byte, o Options, f *fetcher) (chainErr, sigErr error, tcb tcbOutcome) {
	report, err := quote.ParseSNP(raw)
	if err != nil {
		return err, err, tcb
	}
	roots := map[string][]*trust.AMDRootCerts{}
	for line, r := range trust.DefaultRootCerts {
		roots[line] = append(roots[line], r)
	}
	var ark, ask, vcek *x509.Certificate
	for _, c := range o.TrustedCerts {
		switch {
		case bytes.Equal(c.RawIssuer, c.RawSubject):
			ark = c
		case strings.HasPrefix(c.Subject.CommonName, "SEV-VCEK"):
			vcek = c
		default:
			ask = c
		}
	}
	if ark != nil && ask != nil {
		line := strings.TrimPrefix(ark.Subject.CommonName, "ARK-")
		r := trust.AMDRootCertsProduct(line)
		r.ProductCerts = &trust.ProductCerts{Ark: ark, Ask: ask}
		roots[line] = append([]*trust.AMDRootCerts{r}, roots[line]...)
	}
	if vcek == nil && len(o.CertTable) > 0 {
		var table sevabi.CertTable
		if err := table.Unmarshal(o.CertTable); err != nil {
			err = fmt.Errorf("certificate table: %w", err)
			return err, err, tcb
		}
		der, err := table.GetByGUIDString(sevabi.VcekGUID)
		if err == nil {
			vcek, err = x509.ParseCertificate(der)
		}
		if err != nil {
			err = fmt.Errorf("certificate table: VCEK: %w", err)
			return err, err, tcb
		}
	}
	if vcek == nil && f != nil {
		att, err := sevverify.GetAttestationFromReportContext(ctx, report, &sevverify.Options{Getter: sevGetter{f}, TrustedRoots: roots, Now: o.Now})
		if err != nil {
			err = fmt.Errorf("fetch the VCEK from AMD KDS: %w", err)
			return err, err, tcb
		}
		if vcek, err = x509.ParseCertificate(att.GetCertificateChain().GetVcekCert()); err != nil {
			err = fmt.Errorf("VCEK from AMD KDS: %w", err)
			return err, err, tcb
		}
	}
	if vcek == nil {
		err := errors.New("no VCEK certificate: pass the VCEK in Options.TrustedCerts (--trust-root), or verify online to fetch it from AMD KDS")
		return err, err, tcb
	}
	att := &spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{VcekCert: vcek.Raw}}
	if ask != nil {
		att.CertificateChain.AskCert = ask.Raw
	}
	if ark != nil {
		att.CertificateChain.ArkCert = ark.Raw
	}
	if err := sevverify.SnpReportSignature(raw, vcek); err != nil {
		sigErr = err
	}
	if err := sevverify.SnpAttestationContext(ctx, att, &sevverify.Options{DisableCertFetching: true, Now: o.Now, TrustedRoots: roots}); err != nil && sigErr == nil {
		chainErr = fmt.Errorf("the VCEK does not chain to a trusted AMD root (or Options.TrustedCerts: --trust-root): %w", err)
	}
	if f != nil && chainErr == nil && sigErr == nil {
		opts := &sevverify.Options{DisableCertFetching: true, CheckRevocations: true, Getter: sevGetter{f}, Now: o.Now, TrustedRoots: roots}
		if err := sevverify.SnpAttestationContext(ctx, att, opts); err != nil {
			tcb.err = fmt.Errorf("revocation check against AMD KDS's CRL: %w", err)
		} else {
			tcb.detail = "the ASK and VCEK are not revoked (CRL from AMD KDS); SEV-SNP has no TCB status: pin reported_tcb in the policy"
		}
	}
	return chainErr, sigErr, tcb
}
