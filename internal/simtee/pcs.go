package simtee

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// PCSOptions shape the collateral a simulated PCS serves.
type PCSOptions struct {
	// TCBStatus is the status of the platform's TCB level ("UpToDate",
	// "OutOfDate", "SWHardeningNeeded", ...). Default UpToDate.
	TCBStatus string
	// QEStatus is the QE identity's TCB status. Default UpToDate.
	QEStatus string
	// NextUpdate is the collateral's nextUpdate (default: in 30 days).
	NextUpdate time.Time
	// RevokePCK puts the PCK certificate on the PCK CRL.
	RevokePCK bool
	// QEMRSigner replaces the QE identity's MRSIGNER (default: the
	// simulated QE's), to serve an identity the QE does not match.
	QEMRSigner []byte
}

// PCS serves Intel-PCS-shaped collateral (TCB info, QE identity, PCK CRL,
// root CRL) for quotes of the simulated TDX provider, signed by its chain.
// It stands in for Intel's PCS or a PCCS in tests and demonstrations.
type PCS struct {
	chain *chainFile
	opts  PCSOptions
}

// NewPCS loads the simulated TDX chain of stateDir (made by NewTDX).
func NewPCS(stateDir string, o PCSOptions) (*PCS, error) {
	c, err := loadChain(filepath.Join(stateDir, TDXChainFile), 4, 5)
	if err != nil {
		return nil, fmt.Errorf("simulated PCS: %w", err)
	}
	if o.TCBStatus == "" {
		o.TCBStatus = "UpToDate"
	}
	if o.QEStatus == "" {
		o.QEStatus = "UpToDate"
	}
	if o.NextUpdate.IsZero() {
		o.NextUpdate = time.Now().Add(30 * 24 * time.Hour)
	}
	return &PCS{chain: c, opts: o}, nil
}

func (p *PCS) root() *x509.Certificate  { return p.chain.certs[0] }
func (p *PCS) inter() *x509.Certificate { return p.chain.certs[1] }
func (p *PCS) pck() *x509.Certificate   { return p.chain.certs[2] }
func (p *PCS) tcb() *x509.Certificate   { return p.chain.certs[3] }
func (p *PCS) rootKey() crypto.Signer   { return p.chain.keys[2] }
func (p *PCS) interKey() crypto.Signer  { return p.chain.keys[3] }
func (p *PCS) tcbKey() crypto.Signer    { return p.chain.keys[4] }

func issuerChain(certs ...*x509.Certificate) string {
	return url.QueryEscape(string(pemChain(certs...)))
}

// ServeHTTP answers the PCS v4 paths teesign's verifier asks for:
// /tdx/certification/v4/tcb, /tdx/certification/v4/qe/identity,
// /sgx/certification/v4/pckcrl and /sgx/certification/v4/rootcacrl.
func (p *PCS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var err error
	switch r.URL.Path {
	case "/tdx/certification/v4/tcb":
		body, err = p.signedJSON("tcbInfo", p.tcbInfo(r.URL.Query().Get("fmspc")))
		w.Header().Set("TCB-Info-Issuer-Chain", issuerChain(p.tcb(), p.root()))
	case "/tdx/certification/v4/qe/identity":
		body, err = p.signedJSON("enclaveIdentity", p.qeIdentity())
		w.Header().Set("SGX-Enclave-Identity-Issuer-Chain", issuerChain(p.tcb(), p.root()))
	case "/sgx/certification/v4/pckcrl":
		var revoked []x509.RevocationListEntry
		if p.opts.RevokePCK {
			revoked = append(revoked, x509.RevocationListEntry{SerialNumber: p.pck().SerialNumber, RevocationTime: time.Now().Add(-time.Hour)})
		}
		body, err = p.crl(p.inter(), p.interKey(), revoked)
		w.Header().Set("SGX-PCK-CRL-Issuer-Chain", issuerChain(p.inter(), p.root()))
	case "/sgx/certification/v4/rootcacrl", "/IntelSGXRootCA.der":
		body, err = p.crl(p.root(), p.rootKey(), nil)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(body)
}

func (p *PCS) crl(issuer *x509.Certificate, key crypto.Signer, revoked []x509.RevocationListEntry) ([]byte, error) {
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(1),
		ThisUpdate:                time.Now().Add(-time.Hour),
		NextUpdate:                p.opts.NextUpdate,
		RevokedCertificateEntries: revoked,
		SignatureAlgorithm:        x509.ECDSAWithSHA256,
	}, issuer, key)
}

// signedJSON returns {"<name>": body, "signature": hex(r‖s)} with the
// signature over body's exact bytes, as Intel signs collateral.
func (p *PCS) signedJSON(name string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sig, err := sign(p.tcbKey(), body)
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf(`{"%s":%s,"signature":"%s"}`, name, body, hex.EncodeToString(sig))), nil
}

func components(svns []byte) []pcs.TcbComponent {
	out := make([]pcs.TcbComponent, len(svns))
	for i, s := range svns {
		out[i] = pcs.TcbComponent{Svn: s}
	}
	return out
}

type tcbJSON struct {
	SgxTcbcomponents []pcs.TcbComponent `json:"sgxtcbcomponents,omitempty"`
	Pcesvn           uint16             `json:"pcesvn,omitempty"`
	TdxTcbcomponents []pcs.TcbComponent `json:"tdxtcbcomponents,omitempty"`
	Isvsvn           *uint32            `json:"isvsvn,omitempty"`
}

type levelJSON struct {
	Tcb       tcbJSON `json:"tcb"`
	TcbDate   string  `json:"tcbDate"`
	TcbStatus string  `json:"tcbStatus"`
}

func (p *PCS) tcbInfo(fmspc string) any {
	exts, err := pcs.PckCertificateExtensions(p.pck())
	if err == nil && fmspc == "" {
		fmspc = exts.FMSPC
	}
	var cpu []byte
	var pce uint16
	if err == nil {
		cpu, pce = exts.TCB.CPUSvnComponents, exts.TCB.PCESvn
	}
	zero := uint32(0)
	isv := uint32(simTeeTcbSvn[0])
	date := time.Now().UTC().Format(time.RFC3339)
	return map[string]any{
		"id": "TDX", "version": 3,
		"issueDate": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "nextUpdate": p.opts.NextUpdate.UTC().Format(time.RFC3339),
		"fmspc": strings.ToLower(fmspc), "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 17,
		"tdxModule": map[string]string{"mrsigner": strings.Repeat("0", 96), "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF"},
		"tdxModuleIdentities": []any{map[string]any{
			"id": fmt.Sprintf("TDX_%02X", simTeeTcbSvn[1]), "mrsigner": strings.Repeat("0", 96), "attributes": "0000000000000000", "attributesMask": "FFFFFFFFFFFFFFFF",
			"tcbLevels": []levelJSON{{Tcb: tcbJSON{Isvsvn: &isv}, TcbDate: date, TcbStatus: p.opts.TCBStatus}, {Tcb: tcbJSON{Isvsvn: &zero}, TcbDate: date, TcbStatus: "OutOfDate"}},
		}},
		"tcbLevels": []levelJSON{{
			Tcb:     tcbJSON{SgxTcbcomponents: components(cpu), Pcesvn: pce, TdxTcbcomponents: components(simTeeTcbSvn)},
			TcbDate: date, TcbStatus: p.opts.TCBStatus,
		}},
	}
}

func (p *PCS) qeIdentity() any {
	mrsigner := label("qe-mrsigner")[:32]
	if p.opts.QEMRSigner != nil {
		mrsigner = p.opts.QEMRSigner
	}
	isv := uint32(simQEIsvSvn)
	date := time.Now().UTC().Format(time.RFC3339)
	return map[string]any{
		"id": "TD_QE", "version": 2,
		"issueDate": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "nextUpdate": p.opts.NextUpdate.UTC().Format(time.RFC3339),
		"tcbEvaluationDataNumber": 17, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
		"attributes": "11000000000000000000000000000000", "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
		"mrsigner": hex.EncodeToString(mrsigner), "isvprodid": simQEProdID,
		"tcbLevels": []levelJSON{{Tcb: tcbJSON{Isvsvn: &isv}, TcbDate: date, TcbStatus: p.opts.QEStatus}},
	}
}
