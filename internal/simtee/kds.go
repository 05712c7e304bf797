package simtee

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// KDS serves AMD-KDS-shaped responses for the simulated SEV-SNP chain: the
// VCEK (DER), the ASK‖ARK chain (PEM) and the ARK's CRL.
type KDS struct {
	chain      *chainFile
	nextUpdate time.Time
	revokeASK  bool
}

// NewKDS loads the simulated SEV-SNP chain of stateDir (made by NewSNP).
// revokeASK puts the ASK on the CRL.
func NewKDS(stateDir string, revokeASK bool) (*KDS, error) {
	c, err := loadChain(filepath.Join(stateDir, SNPChainFile), 3, 2)
	if err != nil {
		return nil, fmt.Errorf("simulated KDS: %w", err)
	}
	return &KDS{chain: c, nextUpdate: time.Now().Add(7 * 24 * time.Hour), revokeASK: revokeASK}, nil
}

// ServeHTTP answers /vcek/v1/Milan/<hwid>, /vcek/v1/Milan/cert_chain and
// /vcek/v1/Milan/crl.
func (k *KDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := "/vcek/v1/" + SNPProduct + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		http.NotFound(w, r)
		return
	}
	switch strings.TrimPrefix(r.URL.Path, prefix) {
	case "cert_chain":
		w.Write(pemChain(k.chain.certs[1], k.chain.certs[0]))
	case "crl":
		var revoked []x509.RevocationListEntry
		if k.revokeASK {
			revoked = append(revoked, x509.RevocationListEntry{SerialNumber: k.chain.certs[1].SerialNumber, RevocationTime: time.Now().Add(-time.Hour)})
		}
		crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: k.nextUpdate,
			RevokedCertificateEntries: revoked, SignatureAlgorithm: x509.SHA384WithRSAPSS,
		}, k.chain.certs[0], k.chain.keys[1].(crypto.Signer))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(crl)
	default:
		w.Write(k.chain.certs[2].Raw)
	}
}
