package simtee

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	sevabi "github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/uuid"

	"github.com/teesign/teesign/internal/quote"
)

// SEV-SNP file names in the state directory.
const (
	// SNPChainFile holds the simulated ARK, ASK, VCEK certificates and the
	// VCEK key.
	SNPChainFile = "sim-sev-snp-chain.pem"
	// SNPRootFile is the simulated ARK, ASK and VCEK, for `--trust-root`.
	SNPRootFile = "sim-sev-snp-root.pem"
	// SNPProduct is the product line the simulated chain claims.
	SNPProduct = "Milan"
	// snpProductName is the product name with stepping, as VCEKs carry it.
	snpProductName = "Milan-B0"
)

// The simulated chip's CPUID family, model and stepping: an AMD Milan B0.
const (
	simFamily   = 0x19
	simModel    = 0x01
	simStepping = 0x00
)

// simGuestPolicy is the simulated guest's policy: SMT allowed, debug and
// migration agent not.
var simGuestPolicy = sevabi.SnpPolicyToBytes(sevabi.SnpPolicy{SMT: true})

// simTCB is the simulated platform's TCB (reported_tcb and the VCEK's).
var simTCB = kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115}

// SNP is the sim-sev-snp provider.
type SNP struct {
	chain        *chainFile // ARK, ASK, VCEK; key: VCEK
	measurements map[string]string
}

// NewSNP loads (or makes, on first use: RSA-4096 ARK and ASK, P-384 VCEK)
// the simulated SEV-SNP chain in stateDir, exports ARK, ASK and VCEK as
// sim-sev-snp-root.pem, and returns the provider for a guest launched from
// o.Image, its MEASUREMENT the launch digest of the simulated build with
// o.Workload's compose hash on the kernel command line.
func NewSNP(stateDir string, o Options) (*SNP, error) {
	if stateDir == "" {
		return nil, fmt.Errorf("sim-sev-snp: needs a state directory")
	}
	c, err := loadOrCreate(filepath.Join(stateDir, SNPChainFile), 3, 2, newSNPChain)
	if err != nil {
		return nil, fmt.Errorf("sim-sev-snp: %w", err)
	}
	root := filepath.Join(stateDir, SNPRootFile)
	if err := exportRoots(root, c.certs...); err != nil {
		return nil, fmt.Errorf("sim-sev-snp: export roots: %w", err)
	}
	m, err := SNPImageMeasurements(o.Workload, o.Image, o.DockerFilesSHA256)
	if err != nil {
		return nil, err
	}
	return &SNP{chain: c, measurements: m}, nil
}

func newSNPChain() (*chainFile, error) {
	ark, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		return nil, err
	}
	ask, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		return nil, err
	}
	vcek, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour).Truncate(time.Second)
	tcb, err := kds.ComposeTCBParts(simTCB)
	if err != nil {
		return nil, err
	}
	// go-sev-guest's builder lays out the certificates exactly as AMD's KDS
	// does (names, RSA-PSS, the VCEK's TCB and product extensions); the keys
	// are ours. Reports are signed below with crypto/rand.
	b := &sevtest.AmdSignerBuilder{
		Keys:             &sevtest.AmdKeys{Ark: ark, Ask: ask, Asvk: ask, Vcek: vcek},
		ProductName:      snpProductName,
		ArkCreationTime:  now,
		AskCreationTime:  now,
		AsvkCreationTime: now,
		VcekCreationTime: now,
		TCB:              tcb,
		VcekCustom:       sevtest.CertOverride{Extensions: sevtest.CustomExtensions(simTCB, make([]byte, sevabi.ChipIDSize), "", snpProductName)},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		return nil, err
	}
	return &chainFile{certs: []*x509.Certificate{s.Ark, s.Ask, s.Vcek}, keys: []crypto.Signer{vcek, ark}}, nil
}

// Name implements attest.Provider.
func (p *SNP) Name() string { return "sim-sev-snp" }

// Kind implements attest.Provider.
func (p *SNP) Kind() quote.Kind { return quote.SEVSNP }

// Simulated implements attest.Provider.
func (p *SNP) Simulated() bool { return true }

// SealParams implements keystore.Sealer: the TCB version mixed into the
// key, as the hardware sealer records it.
func (p *SNP) SealParams() ([]byte, error) {
	tcb, err := kds.ComposeTCBParts(simTCB)
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`{"tcb_version":%d}`, uint64(tcb))), nil
}

// SealingKey implements keystore.Sealer with a key derived from the
// simulated chip's secret (its VCEK key), the launch measurement and the
// guest policy, as the AMD security processor's MSG_KEY_REQ derives one.
func (p *SNP) SealingKey(params []byte) ([]byte, error) {
	return simSealingKey(p.chain.keys[0], "sim-sev-snp", p.measurements["measurement"]+"/"+fmt.Sprint(simGuestPolicy), params)
}

// Quote implements attest.Provider: a version-3 ATTESTATION_REPORT signed
// by the simulated VCEK (ECDSA P-384 over SHA-384), with a certificate
// table holding ARK, ASK and VCEK.
func (p *SNP) Quote(ctx context.Context, reportData [64]byte) (*quote.Evidence, error) {
	return p.QuoteWith(ctx, reportData, nil)
}

// QuoteWith is Quote with edit applied to the raw report before it is
// signed: a genuine-looking simulated report with any field, for tests of
// what verifiers make of it.
func (p *SNP) QuoteWith(ctx context.Context, reportData [64]byte, edit func(report []byte)) (*quote.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tcb, err := kds.ComposeTCBParts(simTCB)
	if err != nil {
		return nil, err
	}
	r := make([]byte, quote.SNPReportSize)
	le := binary.LittleEndian
	le.PutUint32(r[0x00:], 3)              // version
	le.PutUint32(r[0x04:], 1)              // guest_svn
	le.PutUint64(r[0x08:], simGuestPolicy) // debug off
	le.PutUint32(r[0x30:], 0)              // vmpl
	le.PutUint32(r[0x34:], 1)              // ECDSA P-384 with SHA-384
	le.PutUint64(r[0x38:], uint64(tcb))    // current_tcb
	le.PutUint64(r[0x40:], 0)              // platform_info: SMT off
	copy(r[0x50:0x90], reportData[:])
	m, _ := hex.DecodeString(p.measurements["measurement"])
	copy(r[0x90:0xC0], m)
	hd, _ := hex.DecodeString(p.measurements["host_data"])
	copy(r[0xC0:0xE0], hd)
	fam, _ := hex.DecodeString(p.measurements["family_id"])
	copy(r[0x10:0x20], fam)
	img, _ := hex.DecodeString(p.measurements["image_id"])
	copy(r[0x20:0x30], img)
	rid := sha512.Sum384(reportData[:])
	copy(r[0x140:0x160], rid[:32])                                  // report_id
	le.PutUint64(r[0x180:], uint64(tcb))                            // reported_tcb
	le.PutUint64(r[0x1E0:], uint64(tcb))                            // committed_tcb
	r[0x1E8], r[0x1E9], r[0x1EA] = 1, 55, 0                         // current build/minor/major
	r[0x1EC], r[0x1ED], r[0x1EE] = 1, 55, 0                         // committed
	le.PutUint64(r[0x1F0:], uint64(tcb))                            // launch_tcb
	r[0x188], r[0x189], r[0x18A] = simFamily, simModel, simStepping // CPUID family, model, stepping (v3)
	if edit != nil {
		edit(r)
	}
	h := sha512.Sum384(sevabi.SignedComponent(r))
	vcek := p.chain.keys[0].(*ecdsa.PrivateKey)
	R, S, err := ecdsa.Sign(rand.Reader, vcek, h[:])
	if err != nil {
		return nil, fmt.Errorf("sim-sev-snp: sign report: %w", err)
	}
	if err := sevabi.SetSignature(R, S, r); err != nil {
		return nil, fmt.Errorf("sim-sev-snp: %w", err)
	}
	return &quote.Evidence{Kind: quote.SEVSNP, Raw: r, CertTable: p.certTable()}, nil
}

// certTable returns ARK, ASK and VCEK in AMD's certificate table format.
func (p *SNP) certTable() []byte {
	t := &sevabi.CertTable{Entries: []sevabi.CertTableEntry{
		{GUID: guid(sevabi.ArkGUID), RawCert: p.chain.certs[0].Raw},
		{GUID: guid(sevabi.AskGUID), RawCert: p.chain.certs[1].Raw},
		{GUID: guid(sevabi.VcekGUID), RawCert: p.chain.certs[2].Raw},
	}}
	return t.Marshal()
}

func guid(s string) uuid.UUID { return uuid.MustParse(s) }
