package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"github.com/teesign/teesign/internal/quote"
)

// Names of the parts of the TDX collateral check, reported in
// Check.Rules of tcb_status when one fails.
const (
	RuleCollateral = "collateral"  // fetching or reading the collateral
	RuleTCBInfo    = "tcb_info"    // TCB info: signature, identity, FMSPC, PCE ID, TDX module
	RuleQEIdentity = "qe_identity" // the QE report against Intel's QE identity
	RuleRevocation = "revocation"  // CRLs and the certificates they revoke
	RuleTCBStatus  = "tcb_status"  // the status is not accepted by the policy
)

// tdxTCB fetches the collateral of a TDX quote whose signatures and chain
// already verified, and checks all of it. go-tdx-guest checks everything
// but stops at the first TCB status other than UpToDate, before the QE
// report is compared with the QE identity; so teesign checks each part
// itself (checkTDXCollateral) and takes the statuses, by name, from the
// library's TCB level match. The library's own verdict must also pass when
// it reports UpToDate for both.
func tdxTCB(ctx context.Context, q any, chain *tdxverify.PCKCertificateChain, pool *x509.CertPool, f *fetcher, now time.Time) tcbOutcome {
	ts := &tdxverify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}
	opts := &tdxverify.Options{GetCollateral: true, CheckRevocations: true, Getter: f, TrustedRoots: pool, Now: ts}
	verr := tdxverify.TdxQuoteContext(ctx, q, opts)
	level, qe, lerr := tdxverify.SupportedTcbLevelsFromCollateral(q, opts)
	if lerr != nil {
		if verr == nil {
			verr = lerr
		}
		return tcbOutcome{rule: RuleCollateral, err: fmt.Errorf("collateral: %w", verr)}
	}
	out := tcbOutcome{status: string(level.TcbStatus), qeStatus: string(qe.TcbStatus)}
	if rule, err := checkTDXCollateral(ctx, q, chain, pool, f, now); err != nil {
		out.rule, out.err = rule, err
		return out
	}
	if verr != nil && out.status == string(pcs.TcbComponentStatusUpToDate) && out.qeStatus == string(pcs.TcbComponentStatusUpToDate) {
		out.rule, out.err = RuleCollateral, fmt.Errorf("collateral: %w", verr)
	}
	return out
}

// checkTDXCollateral checks every part of the collateral except the TCB
// statuses: the TCB info's and QE identity's signatures under the trusted
// root, their identities, the CRLs and what they revoke, the quote body
// against the TCB info (FMSPC, PCE ID, TDX module signer and attributes)
// and the QE report against the QE identity (MISCSELECT, attributes,
// MRSIGNER, ISVPRODID). It returns the failing part's rule name.
func checkTDXCollateral(ctx context.Context, q any, chain *tdxverify.PCKCertificateChain, pool *x509.CertPool, f *fetcher, now time.Time) (string, error) {
	exts, err := pcs.PckCertificateExtensions(chain.PCKCertificate)
	if err != nil {
		return RuleCollateral, fmt.Errorf("PCK certificate extensions: %w", err)
	}
	ca := "platform"
	if strings.Contains(chain.PCKCertificate.Issuer.CommonName, "Processor") {
		ca = "processor"
	}
	tcbHeader, tcbBody, err := f.GetContext(ctx, pcs.TcbInfoURL(exts.FMSPC))
	if err != nil {
		return RuleCollateral, fmt.Errorf("TCB info: %w", err)
	}
	qeHeader, qeBody, err := f.GetContext(ctx, pcs.QeIdentityURL())
	if err != nil {
		return RuleCollateral, fmt.Errorf("QE identity: %w", err)
	}
	_, pckCRLBody, err := f.GetContext(ctx, pcs.PckCrlURL(ca))
	if err != nil {
		return RuleCollateral, fmt.Errorf("PCK CRL: %w", err)
	}
	pckCRL, err := x509.ParseRevocationList(pckCRLBody)
	if err != nil {
		return RuleRevocation, fmt.Errorf("PCK CRL: %w", err)
	}
	tcbSigner, tcbRoot, err := issuerChain(tcbHeader, "TCB-Info-Issuer-Chain")
	if err != nil {
		return RuleTCBInfo, err
	}
	qeSigner, qeRoot, err := issuerChain(qeHeader, "SGX-Enclave-Identity-Issuer-Chain")
	if err != nil {
		return RuleQEIdentity, err
	}
	if len(qeRoot.CRLDistributionPoints) == 0 {
		return RuleRevocation, errors.New("the QE identity's root names no CRL")
	}
	_, rootCRLBody, err := f.GetContext(ctx, qeRoot.CRLDistributionPoints[0])
	if err != nil {
		return RuleCollateral, fmt.Errorf("root CA CRL: %w", err)
	}
	rootCRL, err := x509.ParseRevocationList(rootCRLBody)
	if err != nil {
		return RuleRevocation, fmt.Errorf("root CA CRL: %w", err)
	}
	// Revocation: both CRLs signed by their issuers in the PCK chain and
	// current; nothing in the PCK chain or either signing chain revoked.
	if err := currentCRL("root CA CRL", rootCRL, chain.RootCertificate, now); err != nil {
		return RuleRevocation, err
	}
	if err := currentCRL("PCK CRL", pckCRL, chain.IntermediateCertificate, now); err != nil {
		return RuleRevocation, err
	}
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		crl  *x509.RevocationList
	}{
		{"the PCK certificate", chain.PCKCertificate, pckCRL},
		{"the PCK platform/processor CA", chain.IntermediateCertificate, rootCRL},
		{"the TCB info signing certificate", tcbSigner, rootCRL},
		{"the QE identity signing certificate", qeSigner, rootCRL},
	} {
		if revoked(c.cert.SerialNumber, c.crl) {
			return RuleRevocation, fmt.Errorf("%s (serial %x) is revoked", c.name, c.cert.SerialNumber)
		}
	}
	// TCB info: signed under the trusted root, current, for this platform.
	var tcb pcs.TdxTcbInfo
	if err := signedBody("tcbInfo", tcbBody, tcbSigner, tcbRoot, pool, now, &tcb); err != nil {
		return RuleTCBInfo, fmt.Errorf("TCB info: %w", err)
	}
	ti := tcb.TcbInfo
	if ti.ID != "TDX" || ti.Version != 3 {
		return RuleTCBInfo, fmt.Errorf("TCB info is %q version %d, want TDX version 3", ti.ID, ti.Version)
	}
	if now.After(ti.NextUpdate) {
		return RuleTCBInfo, fmt.Errorf("TCB info expired at %s (verification time %s)", ti.NextUpdate.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	if !strings.EqualFold(ti.Fmspc, exts.FMSPC) || !strings.EqualFold(ti.PceID, exts.PCEID) {
		return RuleTCBInfo, fmt.Errorf("TCB info is for FMSPC %s, PCE ID %s; the PCK certificate has %s, %s", ti.Fmspc, ti.PceID, exts.FMSPC, exts.PCEID)
	}
	tq, err := tdxQuoteBody(q)
	if err != nil {
		return RuleTCBInfo, err
	}
	if !bytes.Equal(ti.TdxModule.Mrsigner.Bytes, tq.mrSignerSeam) {
		return RuleTCBInfo, fmt.Errorf("MRSIGNERSEAM %x is not the TDX module signer %x of the TCB info", tq.mrSignerSeam, ti.TdxModule.Mrsigner.Bytes)
	}
	if !maskedEqual(tq.seamAttributes, ti.TdxModule.AttributesMask.Bytes, ti.TdxModule.Attributes.Bytes) {
		return RuleTCBInfo, fmt.Errorf("SEAM attributes %x under mask %x are not the TCB info's %x", tq.seamAttributes, ti.TdxModule.AttributesMask.Bytes, ti.TdxModule.Attributes.Bytes)
	}
	// QE identity: signed under the trusted root, current; the QE report
	// is Intel's TD quoting enclave.
	var qid pcs.QeIdentity
	if err := signedBody("enclaveIdentity", qeBody, qeSigner, qeRoot, pool, now, &qid); err != nil {
		return RuleQEIdentity, fmt.Errorf("QE identity: %w", err)
	}
	id := qid.EnclaveIdentity
	if id.ID != "TD_QE" || id.Version != 2 {
		return RuleQEIdentity, fmt.Errorf("QE identity is %q version %d, want TD_QE version 2", id.ID, id.Version)
	}
	if now.After(id.NextUpdate) {
		return RuleQEIdentity, fmt.Errorf("QE identity expired at %s (verification time %s)", id.NextUpdate.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	rep := tq.qeReport
	var misc [4]byte
	binary.LittleEndian.PutUint32(misc[:], rep.GetMiscSelect())
	switch {
	case !maskedEqual(misc[:], id.MiscselectMask.Bytes, id.Miscselect.Bytes):
		return RuleQEIdentity, fmt.Errorf("QE identity: the QE's MISCSELECT %x under mask %x is not %x", misc, id.MiscselectMask.Bytes, id.Miscselect.Bytes)
	case !maskedEqual(rep.GetAttributes(), id.AttributesMask.Bytes, id.Attributes.Bytes):
		return RuleQEIdentity, fmt.Errorf("QE identity: the QE's attributes %x under mask %x are not %x", rep.GetAttributes(), id.AttributesMask.Bytes, id.Attributes.Bytes)
	case !bytes.Equal(rep.GetMrSigner(), id.Mrsigner.Bytes):
		return RuleQEIdentity, fmt.Errorf("QE identity: the QE's MRSIGNER %x is not Intel's %x", rep.GetMrSigner(), id.Mrsigner.Bytes)
	case rep.GetIsvProdId() != uint32(id.IsvProdID):
		return RuleQEIdentity, fmt.Errorf("QE identity: the QE's ISVPRODID %d is not %d", rep.GetIsvProdId(), id.IsvProdID)
	}
	return "", nil
}

// issuerChain reads a PCS issuer chain header: URL-escaped PEM, the
// signing certificate then the root.
func issuerChain(h map[string][]string, name string) (signer, root *x509.Certificate, err error) {
	v := ""
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) == 1 {
			v = vs[0]
		}
	}
	if v == "" {
		return nil, nil, fmt.Errorf("the collateral has no %s header", name)
	}
	s, err := url.QueryUnescape(v)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("%s: want the signing certificate and the root, got %d certificates", name, len(certs))
	}
	return certs[0], certs[1], nil
}

// signedBody checks a PCS response {"<name>": {...}, "signature": hex}:
// the signing certificate chains to a trusted root through the given
// root, and signs the exact bytes of the named member. It decodes the
// whole response into v.
func signedBody(name string, body []byte, signer, root *x509.Certificate, pool *x509.CertPool, now time.Time, v any) error {
	inter := x509.NewCertPool()
	inter.AddCert(root)
	if _, err := signer.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now}); err != nil {
		return fmt.Errorf("the signing certificate does not chain to a trusted root: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	var sigHex string
	if err := json.Unmarshal(raw["signature"], &sigHex); err != nil {
		return errors.New("no signature")
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != 64 {
		return errors.New("the signature is not 64 bytes of hex")
	}
	pub, ok := signer.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("the signing key is not ECDSA")
	}
	d := sha256.Sum256(raw[name])
	if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("the signature does not verify")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed: %w", err)
	}
	return nil
}

func currentCRL(name string, crl *x509.RevocationList, issuer *x509.Certificate, now time.Time) error {
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("%s is not signed by %s: %w", name, issuer.Subject.CommonName, err)
	}
	if now.After(crl.NextUpdate) {
		return fmt.Errorf("%s expired at %s (verification time %s)", name, crl.NextUpdate.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return nil
}

func revoked(serial *big.Int, crl *x509.RevocationList) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// maskedEqual reports whether got under mask equals want (all of equal
// length).
func maskedEqual(got, mask, want []byte) bool {
	if len(got) != len(mask) || len(mask) != len(want) {
		return false
	}
	for i := range got {
		if got[i]&mask[i] != want[i] {
			return false
		}
	}
	return true
}

type tdxParts struct {
	mrSignerSeam, seamAttributes []byte
	qeReport                     *tdxpb.EnclaveReport
}

func tdxQuoteBody(q any) (*tdxParts, error) {
	b := quote.TDXBody(q)
	var sd *tdxpb.Ecdsa256BitQuoteV4AuthData
	switch q := q.(type) {
	case *tdxpb.QuoteV4:
		sd = q.GetSignedData()
	case *tdxpb.QuoteV5:
		sd = q.GetSignedData()
	}
	rep := sd.GetCertificationData().GetQeReportCertificationData().GetQeReport()
	if b == nil || rep == nil {
		return nil, errors.New("the quote has no TD body or QE report")
	}
	return &tdxParts{mrSignerSeam: b.GetMrSignerSeam(), seamAttributes: b.GetSeamAttributes(), qeReport: rep}, nil
}
