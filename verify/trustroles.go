package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"slices"

	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// AMDCerts are SEV-SNP trust certificates given by role.
type AMDCerts struct {
	// ARK is AMD's self-signed root key certificate of a product line.
	ARK *x509.Certificate
	// ASK is the intermediate the ARK certifies: the ASK, which signs
	// VCEKs, or the ASVK, which signs VLEKs.
	ASK *x509.Certificate
	// VCEK is the key that signs reports: a chip's VCEK, or a cloud
	// provider's VLEK.
	VCEK *x509.Certificate
}

// AMD's certificate extensions (AMD KDS specification): hwID is only in
// VCEKs, cspID only in VLEKs.
var (
	oidAMDHwID  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 4}
	oidAMDCspID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 5}
)

// Trust is trust material sorted by role: what Options.TrustedCerts and
// Options.AMD give, checked once (each root's self-signature, each AMD
// intermediate's ARK) instead of at every verification. A Trust is safe
// for concurrent use; the certificates given to NewTrust must not be
// changed afterwards.
type Trust struct {
	certs []*x509.Certificate
	amd   AMDCerts
	set   *trustSet
}

// NewTrust sorts certs (told apart as Options.TrustedCerts describes) and
// the AMD certificates given by role, and fails as a verification with
// those options would: a certificate that fits no role, a role given the
// wrong certificate, an AMD intermediate no known ARK signs.
func NewTrust(certs []*x509.Certificate, amd AMDCerts) (*Trust, error) {
	set, err := sortTrusted(certs, amd)
	if err != nil {
		return nil, err
	}
	return &Trust{certs: slices.Clone(certs), amd: amd, set: set}, nil
}

// trustSet is the caller's trust material sorted by role.
type trustSet struct {
	intelRoots []*x509.Certificate
	arks       []*x509.Certificate
	icas       []*x509.Certificate // ASKs and ASVKs
	eks        []*x509.Certificate // VCEKs and VLEKs
	// tdxRoots are Intel's SGX root and the Intel-style roots given.
	tdxRoots *x509.CertPool
}

func hasExt(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// role tells what a certificate is from its signature, key, CA flag and
// extensions (never from its name), or "" when it fits no role.
func role(c *x509.Certificate) string {
	_, isRSA := c.PublicKey.(*rsa.PublicKey)
	_, isEC := c.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !c.IsCA && isEC && hasExt(c, oidAMDHwID) != hasExt(c, oidAMDCspID):
		return "VCEK or VLEK"
	case c.IsCA && selfSigned(c) && isEC:
		return "Intel-style root"
	case c.IsCA && selfSigned(c) && isRSA:
		return "ARK"
	case c.IsCA && isRSA && !bytes.Equal(c.RawIssuer, c.RawSubject):
		return "ASK or ASVK"
	}
	return ""
}

func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("%q (issued by %q, serial %x)", c.Subject.String(), c.Issuer.String(), c.SerialNumber)
}

// sortTrusted sorts certificates by role and checks the roles given
// explicitly. A certificate that fits no role is an error; so is an
// ASK that no ARK (given or AMD's) signs.
func sortTrusted(certs []*x509.Certificate, amd AMDCerts) (*trustSet, error) {
	t := &trustSet{}
	for _, c := range certs {
		switch role(c) {
		case "Intel-style root":
			t.intelRoots = append(t.intelRoots, c)
		case "ARK":
			t.arks = append(t.arks, c)
		case "ASK or ASVK":
			t.icas = append(t.icas, c)
		case "VCEK or VLEK":
			t.eks = append(t.eks, c)
		default:
			return nil, fmt.Errorf("trusted certificate %s fits no role: not a self-signed root (Intel-style ECDSA, or an AMD ARK), an AMD ASK/ASVK, VCEK or VLEK: remove it from the trust roots", describeCert(c))
		}
	}
	for _, g := range []struct {
		flag, want string
		c          *x509.Certificate
		add        *[]*x509.Certificate
	}{{"--ark (AMDCerts.ARK)", "ARK", amd.ARK, &t.arks}, {"--ask (AMDCerts.ASK)", "ASK or ASVK", amd.ASK, &t.icas}, {"--vcek (AMDCerts.VCEK)", "VCEK or VLEK", amd.VCEK, &t.eks}} {
		if g.c == nil {
			continue
		}
		if got := role(g.c); got != g.want {
			if got == "" {
				got = "no role"
			}
			return nil, fmt.Errorf("%s: certificate %s is not an %s (it is %s)", g.flag, describeCert(g.c), g.want, got)
		}
		*g.add = append(*g.add, g.c)
	}
	for _, ica := range t.icas {
		if t.signer(ica, t.allARKs()) == nil {
			return nil, fmt.Errorf("trusted certificate %s is an AMD intermediate that no ARK given or known signs: add its ARK", describeCert(ica))
		}
	}
	b, _ := pem.Decode(intelRootPEM)
	intel, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		panic("verify: embedded Intel root: " + err.Error())
	}
	t.tdxRoots = x509.NewCertPool()
	t.tdxRoots.AddCert(intel)
	for _, c := range t.intelRoots {
		t.tdxRoots.AddCert(c)
	}
	return t, nil
}

// allARKs are the ARKs given and AMD's own.
func (t *trustSet) allARKs() []*x509.Certificate {
	out := append([]*x509.Certificate(nil), t.arks...)
	for _, rc := range trust.DefaultRootCerts {
		if rc.ProductCerts != nil && rc.ProductCerts.Ark != nil {
			out = append(out, rc.ProductCerts.Ark)
		}
	}
	return out
}

func (t *trustSet) signer(c *x509.Certificate, candidates []*x509.Certificate) *x509.Certificate {
	for _, s := range candidates {
		if bytes.Equal(c.RawIssuer, s.RawSubject) && c.CheckSignatureFrom(s) == nil {
			return s
		}
	}
	return nil
}

// endorsementKey returns the given VCEK (or VLEK, when vlek) whose key
// signed the report, or the only one of that kind given, or nil.
func (t *trustSet) endorsementKey(raw []byte, vlek bool) *x509.Certificate {
	var kind []*x509.Certificate
	for _, c := range t.eks {
		if hasExt(c, oidAMDCspID) == vlek {
			kind = append(kind, c)
		}
	}
	for _, c := range kind {
		if sevverify.SnpReportSignature(raw, c) == nil {
			return c
		}
	}
	if len(kind) == 1 {
		return kind[0]
	}
	return nil
}

// issuers returns the given intermediate that signs ek and the given ARK
// that signs it (either nil when not given: AMD's own are then used).
func (t *trustSet) issuers(ek *x509.Certificate) (ica, ark *x509.Certificate) {
	ica = t.signer(ek, t.icas)
	if ica == nil {
		return nil, nil
	}
	return ica, t.signer(ica, t.allARKs())
}
