package simtee

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"path/filepath"
	"time"

	tdxabi "github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/teesign/teesign/internal/quote"
)

// File names in the state directory.
const (
	// TDXChainFile holds the simulated PCK chain, PCK key and attestation key.
	TDXChainFile = "sim-tdx-chain.pem"
	// TDXRootFile is the simulated Intel-style root, for `--trust-root`.
	TDXRootFile = "sim-root.pem"
)

// RootCRLURL is where the simulated root says its CRL is: Intel's own
// address, so that a verifier pointed at a PCCS (or teesign's simulated
// PCS) fetches it like the real one.
const RootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// simOU marks every simulated certificate.
const simOU = "teesign simulated TEE - not hardware-backed"

// The SGX extension of a real PCK certificate (from the SecretVM sample's
// PCK leaf): FMSPC, TCB components, PCE ID and the rest, so that verifiers
// parse the simulated leaf exactly as a real one.
var pckSGXExtension = mustHex("30820226301e060a2a864886f84d010d010104106c0e74faebde2c7dceb5320141f09bd330820163060a2a864886f84d010d0102308201533010060b2a864886f84d010d0102010201033010060b2a864886f84d010d0102020201033010060b2a864886f84d010d0102030201023010060b2a864886f84d010d0102040201023010060b2a864886f84d010d0102050201043010060b2a864886f84d010d0102060201013010060b2a864886f84d010d0102070201003010060b2a864886f84d010d0102080201053010060b2a864886f84d010d0102090201003010060b2a864886f84d010d01020a0201003010060b2a864886f84d010d01020b0201003010060b2a864886f84d010d01020c0201003010060b2a864886f84d010d01020d0201003010060b2a864886f84d010d01020e0201003010060b2a864886f84d010d01020f0201003010060b2a864886f84d010d0102100201003010060b2a864886f84d010d01021102010b301f060b2a864886f84d010d0102120410030302020401000500000000000000003010060a2a864886f84d010d0103040200003014060a2a864886f84d010d01040406b0c06f000000300f060a2a864886f84d010d01050a0101301e060a2a864886f84d010d010604101fecd02322b585658d1c6896fd4664163044060a2a864886f84d010d010730363010060b2a864886f84d010d0107010101ff3010060b2a864886f84d010d0107020101ff3010060b2a864886f84d010d0107030101ff")

// The simulated QE's product ID and SVN.
const (
	simQEProdID = 2
	simQEIsvSvn = 7
)

// Intel's QE vendor ID.
var intelQEVendorID = mustHex("939a7233f79c4ca9940a0db3957f0607")

// TDX is the sim-tdx provider.
type TDX struct {
	chain        *chainFile // root, intermediate, PCK leaf; keys: PCK, attestation
	measurements map[string]string
}

// SealParams implements keystore.Sealer: the simulated TD needs none.
func (p *TDX) SealParams() ([]byte, error) { return nil, nil }

// SealingKey implements keystore.Sealer with a key derived from the
// simulated machine's secret (its PCK key) and the TD's launch
// measurement (MR_TD), as a sealing TEE would: another image or another
// state directory's machine derives another key. Real TDX has no sealing
// key; only the simulator seals, so that tests run the sealed path.
func (p *TDX) SealingKey(params []byte) ([]byte, error) {
	return simSealingKey(p.chain.keys[0], "sim-tdx", p.measurements["mr_td"], params)
}

// NewTDX loads (or makes, on first use) the simulated TDX chain in
// stateDir, exports its root as sim-root.pem, and returns a provider whose
// TD has the fixed simulated measurements of o.Image and RTMR3 replayed
// from o.Workload as SecretVM's initramfs extends it.
func NewTDX(stateDir string, o Options) (*TDX, error) {
	if stateDir == "" {
		return nil, fmt.Errorf("sim-tdx: needs a state directory")
	}
	c, err := loadOrCreate(filepath.Join(stateDir, TDXChainFile), 4, 5, newTDXChain)
	if err != nil {
		return nil, fmt.Errorf("sim-tdx: %w", err)
	}
	root := filepath.Join(stateDir, TDXRootFile)
	if err := exportRoots(root, c.certs[0]); err != nil {
		return nil, fmt.Errorf("sim-tdx: export root: %w", err)
	}
	return &TDX{chain: c, measurements: TDXImageMeasurements(o.Workload, o.Image, o.DockerFilesSHA256)}, nil
}

// Name implements attest.Provider.
func (p *TDX) Name() string { return "sim-tdx" }

// Kind implements attest.Provider.
func (p *TDX) Kind() quote.Kind { return quote.TDX }

// Simulated implements attest.Provider.
func (p *TDX) Simulated() bool { return true }

func intelName(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"Intel Corporation"}, OrganizationalUnit: []string{simOU},
		Locality: []string{"Santa Clara"}, Province: []string{"CA"}, Country: []string{"US"}}
}

func newTDXChain() (*chainFile, error) {
	gen := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	rootKey, err := gen()
	if err != nil {
		return nil, err
	}
	interKey, err := gen()
	if err != nil {
		return nil, err
	}
	pckKey, err := gen()
	if err != nil {
		return nil, err
	}
	tcbKey, err := gen()
	if err != nil {
		return nil, err
	}
	attKey, err := gen()
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	serial := func() *big.Int { n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); return n }
	rootT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX Root CA"), NotBefore: now, NotAfter: now.AddDate(30, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
		SignatureAlgorithm: x509.ECDSAWithSHA256, SubjectKeyId: keyID(rootKey),
		CRLDistributionPoints: []string{RootCRLURL},
	}
	interT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX PCK Platform CA"), NotBefore: now, NotAfter: now.AddDate(25, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 0, MaxPathLenZero: true,
		SignatureAlgorithm: x509.ECDSAWithSHA256, SubjectKeyId: keyID(interKey),
		CRLDistributionPoints: []string{RootCRLURL},
	}
	tcbT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX TCB Signing"), NotBefore: now, NotAfter: now.AddDate(25, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, BasicConstraintsValid: true,
		SignatureAlgorithm: x509.ECDSAWithSHA256, SubjectKeyId: keyID(tcbKey),
		CRLDistributionPoints: []string{RootCRLURL},
	}
	leafT := &x509.Certificate{
		SerialNumber: serial(), Subject: intelName("Intel SGX PCK Certificate"), NotBefore: now, NotAfter: now.AddDate(20, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, BasicConstraintsValid: true,
		SubjectKeyId:          keyID(pckKey),
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
		CRLDistributionPoints: []string{"https://teesign.invalid/sim/pckcrl?ca=platform&encoding=der"},
		ExtraExtensions:       []pkix.Extension{{Id: pcs.OidSgxExtension, Value: pckSGXExtension}},
	}
	issue := func(t, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
		der, err := x509.CreateCertificate(rand.Reader, t, parent, pub, signer)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	root, err := issue(rootT, rootT, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := issue(interT, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	leaf, err := issue(leafT, inter, pckKey.Public(), interKey)
	if err != nil {
		return nil, err
	}
	tcb, err := issue(tcbT, root, tcbKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	return &chainFile{
		certs: []*x509.Certificate{root, inter, leaf, tcb},
		keys:  []crypto.Signer{pckKey, attKey, rootKey, interKey, tcbKey},
	}, nil
}

// keyID is the SHA-1 of the public key's bytes, as RFC 5280's method 1
// (Intel's PCK certificates carry a subject key identifier).
func keyID(k *ecdsa.PrivateKey) []byte {
	b, _ := k.PublicKey.Bytes()
	h := sha1.Sum(b)
	return h[:]
}

// sign returns the 64-byte r‖s ECDSA P-256 signature over SHA-256(msg).
func sign(k crypto.Signer, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	der, err := k.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

func pemChain(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Quote implements attest.Provider: a TDX v4 quote over reportData, with
// QE report, QE auth data and the PCK chain (certification data 6 ⊃ 5).
func (p *TDX) Quote(ctx context.Context, reportData [64]byte) (*quote.Evidence, error) {
	return p.QuoteWith(ctx, reportData, nil)
}

// QuoteWith is Quote with edit applied to the TD quote body before it is
// signed: a genuine-looking simulated quote with any field, for tests of
// what verifiers make of it.
func (p *TDX) QuoteWith(ctx context.Context, reportData [64]byte, edit func(*tdxpb.TDQuoteBody)) (*quote.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pckKey, attKey := p.chain.keys[0], p.chain.keys[1]
	attPub := attKey.Public().(*ecdsa.PublicKey)
	attBytes, err := attPub.Bytes() // 0x04 ‖ X ‖ Y
	if err != nil {
		return nil, err
	}
	attRaw := attBytes[1:]
	authData := sha256.Sum256([]byte("teesign-sim/qe-auth-data"))
	qeRD := sha256.Sum256(append(append([]byte(nil), attRaw...), authData[:]...))
	qeReport := &tdxpb.EnclaveReport{
		CpuSvn:     mustHex("0303191b04ff00060000000000000000"),
		Reserved1:  make([]byte, 28),
		Attributes: mustHex("1500000000000000e700000000000000"),
		MrEnclave:  label("qe-mrenclave")[:32],
		Reserved2:  make([]byte, 32),
		MrSigner:   label("qe-mrsigner")[:32],
		Reserved3:  make([]byte, 96),
		IsvProdId:  simQEProdID,
		IsvSvn:     simQEIsvSvn,
		Reserved4:  make([]byte, 60),
		ReportData: append(qeRD[:], make([]byte, 32)...),
	}
	qeRaw, err := tdxabi.EnclaveReportToAbiBytes(qeReport)
	if err != nil {
		return nil, fmt.Errorf("sim-tdx: QE report: %w", err)
	}
	qeSig, err := sign(pckKey, qeRaw)
	if err != nil {
		return nil, fmt.Errorf("sim-tdx: sign QE report: %w", err)
	}
	chainPEM := pemChain(p.chain.certs[2], p.chain.certs[1], p.chain.certs[0])
	body := p.newBody(reportData)
	if edit != nil {
		edit(body)
	}
	header := &tdxpb.Header{
		Version: 4, AttestationKeyType: 2, TeeType: tdxabi.TeeTDX,
		QeSvn: []byte{7, 0}, PceSvn: []byte{11, 0}, QeVendorId: intelQEVendorID, UserData: make([]byte, 20),
	}
	hb, err := tdxabi.HeaderToAbiBytes(header)
	if err != nil {
		return nil, err
	}
	bb, err := tdxabi.TdQuoteBodyToAbiBytes(body)
	if err != nil {
		return nil, err
	}
	quoteSig, err := sign(attKey, append(hb, bb...))
	if err != nil {
		return nil, fmt.Errorf("sim-tdx: sign quote: %w", err)
	}
	qeCert := &tdxpb.QEReportCertificationData{
		QeReport:          qeReport,
		QeReportSignature: qeSig,
		QeAuthData:        &tdxpb.QeAuthData{ParsedDataSize: uint32(len(authData)), Data: authData[:]},
		PckCertificateChainData: &tdxpb.PCKCertificateChainData{
			CertificateDataType: 5, Size: uint32(len(chainPEM)), PckCertChain: chainPEM,
		},
	}
	qeCertSize := uint32(len(qeRaw) + 64 + 2 + len(authData) + 2 + 4 + len(chainPEM))
	q := &tdxpb.QuoteV4{
		Header:         header,
		TdQuoteBody:    body,
		SignedDataSize: 64 + 64 + 2 + 4 + qeCertSize,
		SignedData: &tdxpb.Ecdsa256BitQuoteV4AuthData{
			Signature:           quoteSig,
			EcdsaAttestationKey: attRaw,
			CertificationData: &tdxpb.CertificationData{
				CertificateDataType: 6, Size: qeCertSize, QeReportCertificationData: qeCert,
			},
		},
	}
	raw, err := tdxabi.QuoteToAbiBytes(q)
	if err != nil {
		return nil, fmt.Errorf("sim-tdx: encode quote: %w", err)
	}
	return &quote.Evidence{Kind: quote.TDX, Raw: raw}, nil
}

func (p *TDX) newBody(reportData [64]byte) *tdxpb.TDQuoteBody {
	h := func(k string) []byte { b, _ := hex.DecodeString(p.measurements[k]); return b }
	return &tdxpb.TDQuoteBody{
		TeeTcbSvn:      h("tee_tcb_svn"),
		MrSeam:         h("mr_seam"),
		MrSignerSeam:   make([]byte, 48),
		SeamAttributes: make([]byte, 8),
		TdAttributes:   h("td_attributes"),
		Xfam:           h("xfam"),
		MrTd:           h("mr_td"),
		MrConfigId:     make([]byte, 48),
		MrOwner:        make([]byte, 48),
		MrOwnerConfig:  make([]byte, 48),
		Rtmrs:          [][]byte{h("rtmr0"), h("rtmr1"), h("rtmr2"), h("rtmr3")},
		ReportData:     append([]byte(nil), reportData[:]...),
	}
}
