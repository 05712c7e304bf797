package keys

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	oidEd25519     = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// PEM block types.
const (
	pemPublicKey    = "PUBLIC KEY"
	pemPrivateKey   = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
	pemECParameters = "EC PARAMETERS"
)

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

type pkcs8 struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
	Attributes asn1.RawValue  `asn1:"optional,tag:0"`
	PublicKey  asn1.BitString `asn1:"optional,tag:1"`
}

// ecPrivateKey is SEC1's ECPrivateKey (RFC 5915).
type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	Parameters asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// MarshalPKIX returns the SPKI DER encoding of p (RFC 5480 with an
// uncompressed point for secp256k1, RFC 8410 for ed25519).
func (p *PublicKey) MarshalPKIX() []byte {
	if p.alg == Ed25519 {
		der, err := x509.MarshalPKIXPublicKey(p.ed)
		if err != nil {
			panic("keys: marshal ed25519 public key: " + err.Error()) // cannot happen for a 32-byte key
		}
		return der
	}
	params, _ := asn1.Marshal(oidSecp256k1)
	point := p.k1.SerializeUncompressed()
	der, err := asn1.Marshal(spki{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}},
		PublicKey: wholeBytes(point),
	})
	if err != nil {
		panic("keys: marshal secp256k1 public key: " + err.Error())
	}
	return der
}

// wholeBytes is a BIT STRING of whole bytes, as key encodings use.
func wholeBytes(b []byte) asn1.BitString { return asn1.BitString{Bytes: b, BitLength: 8 * len(b)} }

// MarshalPEM returns p as a "PUBLIC KEY" PEM block.
func (p *PublicKey) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: p.MarshalPKIX()})
}

// MarshalPKCS8 returns the PKCS#8 DER encoding of k. secp256k1 keys carry
// the curve in the algorithm identifier and the public key inside the
// ECPrivateKey, as OpenSSL writes them.
func (k *PrivateKey) MarshalPKCS8() []byte {
	if k.alg == Ed25519 {
		der, err := x509.MarshalPKCS8PrivateKey(k.ed)
		if err != nil {
			panic("keys: marshal ed25519 private key: " + err.Error())
		}
		return der
	}
	scalar := k.k1.Key.Bytes()
	point := k.pub.k1.SerializeUncompressed()
	inner, err := asn1.Marshal(ecPrivateKey{
		Version:    1,
		PrivateKey: scalar[:],
		PublicKey:  wholeBytes(point),
	})
	if err != nil {
		panic("keys: marshal secp256k1 private key: " + err.Error())
	}
	params, _ := asn1.Marshal(oidSecp256k1)
	der, err := asn1.Marshal(pkcs8{
		Algorithm:  pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}},
		PrivateKey: inner,
	})
	if err != nil {
		panic("keys: marshal secp256k1 PKCS#8: " + err.Error())
	}
	return der
}

// MarshalPEM returns k as a PKCS#8 "PRIVATE KEY" PEM block.
func (k *PrivateKey) MarshalPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: k.MarshalPKCS8()})
}

// decodePEM returns the PEM blocks in data, refusing anything else: text
// around or between blocks, and PEM headers.
func decodePEM(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, errors.New("PEM: unexpected data outside a PEM block")
		}
		b, r := pem.Decode(rest)
		if b == nil {
			return nil, errors.New("PEM: malformed block")
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("PEM: %q block has headers (encrypted keys are not supported)", b.Type)
		}
		blocks = append(blocks, b)
		rest = bytes.TrimSpace(r)
	}
	if len(blocks) == 0 {
		return nil, errors.New("PEM: no PEM block found")
	}
	return blocks, nil
}

func unmarshalStrict(der []byte, v any, what string) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return fmt.Errorf("%s: malformed DER: %w", what, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%s: %d trailing bytes after the DER structure", what, len(rest))
	}
	return nil
}

// ParsePublicKeyPEM parses a single "PUBLIC KEY" PEM block holding a
// secp256k1 or ed25519 SPKI.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if len(blocks) != 1 || blocks[0].Type != pemPublicKey {
		return nil, fmt.Errorf("public key: want exactly one %q PEM block, found %d block(s) starting with %q", pemPublicKey, len(blocks), blocks[0].Type)
	}
	return ParsePKIXPublicKey(blocks[0].Bytes)
}

// ParsePKIXPublicKey parses an SPKI DER public key (secp256k1 or ed25519).
func ParsePKIXPublicKey(der []byte) (*PublicKey, error) {
	var s spki
	if err := unmarshalStrict(der, &s, "public key"); err != nil {
		return nil, err
	}
	switch {
	case s.Algorithm.Algorithm.Equal(oidEd25519):
		if len(s.Algorithm.Parameters.FullBytes) != 0 {
			return nil, errors.New("ed25519 public key: algorithm parameters must be absent (RFC 8410)")
		}
		if s.PublicKey.BitLength != 8*len(s.PublicKey.Bytes) {
			return nil, errors.New("ed25519 public key: bit string is not whole bytes")
		}
		return NewPublicKey(Ed25519, s.PublicKey.Bytes)
	case s.Algorithm.Algorithm.Equal(oidECPublicKey):
		if err := checkCurveParam(s.Algorithm.Parameters.FullBytes); err != nil {
			return nil, fmt.Errorf("EC public key: %w", err)
		}
		pt := s.PublicKey.Bytes
		if s.PublicKey.BitLength != 8*len(pt) || len(pt) != 65 || pt[0] != 0x04 {
			return nil, errors.New("secp256k1 public key: want a 65-byte uncompressed point (0x04‖X‖Y)")
		}
		return NewPublicKey(Secp256k1, pt)
	}
	return nil, fmt.Errorf("public key: unsupported algorithm OID %v: teesign accepts id-ecPublicKey with secp256k1 (1.3.132.0.10) and Ed25519 (1.3.101.112)", s.Algorithm.Algorithm)
}

func checkCurveParam(params []byte) error {
	var curve asn1.ObjectIdentifier
	if err := unmarshalStrict(params, &curve, "curve parameter"); err != nil {
		return fmt.Errorf("curve must be a named curve OID: %w", err)
	}
	if !curve.Equal(oidSecp256k1) {
		return fmt.Errorf("curve %v is not secp256k1 (1.3.132.0.10)", curve)
	}
	return nil
}

// ParsePrivateKeyPEM parses a private key PEM: PKCS#8 "PRIVATE KEY"
// (secp256k1 or ed25519) or SEC1 "EC PRIVATE KEY" (secp256k1), optionally
// preceded by the "EC PARAMETERS" block `openssl ecparam -genkey` writes.
func ParsePrivateKeyPEM(data []byte) (*PrivateKey, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if len(blocks) == 2 && blocks[0].Type == pemECParameters {
		if err := checkCurveParam(blocks[0].Bytes); err != nil {
			return nil, fmt.Errorf("private key: EC PARAMETERS: %w", err)
		}
		blocks = blocks[1:]
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("private key: want one private key PEM block, found %d", len(blocks))
	}
	switch blocks[0].Type {
	case pemPrivateKey:
		return ParsePKCS8PrivateKey(blocks[0].Bytes)
	case pemECPrivateKey:
		return parseSEC1(blocks[0].Bytes, true)
	}
	return nil, fmt.Errorf("private key: unsupported PEM block %q: want %q (PKCS#8) or %q (SEC1)", blocks[0].Type, pemPrivateKey, pemECPrivateKey)
}

// ParsePKCS8PrivateKey parses a PKCS#8 DER private key (secp256k1 or ed25519).
func ParsePKCS8PrivateKey(der []byte) (*PrivateKey, error) {
	var p pkcs8
	if err := unmarshalStrict(der, &p, "PKCS#8 private key"); err != nil {
		return nil, err
	}
	if p.Version != 0 && p.Version != 1 {
		return nil, fmt.Errorf("PKCS#8 private key: unsupported version %d", p.Version)
	}
	switch {
	case p.Algorithm.Algorithm.Equal(oidEd25519):
		if len(p.Algorithm.Parameters.FullBytes) != 0 {
			return nil, errors.New("ed25519 private key: algorithm parameters must be absent (RFC 8410)")
		}
		var seed []byte
		if err := unmarshalStrict(p.PrivateKey, &seed, "ed25519 private key"); err != nil {
			return nil, err
		}
		k, err := NewEd25519FromSeed(seed)
		if err != nil {
			return nil, err
		}
		if len(p.PublicKey.Bytes) != 0 && !bytes.Equal(p.PublicKey.Bytes, k.pub.ed) {
			return nil, errors.New("ed25519 private key: embedded public key does not match the private key")
		}
		return k, nil
	case p.Algorithm.Algorithm.Equal(oidECPublicKey):
		if err := checkCurveParam(p.Algorithm.Parameters.FullBytes); err != nil {
			return nil, fmt.Errorf("EC private key: %w", err)
		}
		return parseSEC1(p.PrivateKey, false)
	}
	return nil, fmt.Errorf("PKCS#8 private key: unsupported algorithm OID %v: teesign accepts id-ecPublicKey with secp256k1 and Ed25519", p.Algorithm.Algorithm)
}

func parseSEC1(der []byte, standalone bool) (*PrivateKey, error) {
	var e ecPrivateKey
	if err := unmarshalStrict(der, &e, "secp256k1 private key"); err != nil {
		return nil, err
	}
	if e.Version != 1 {
		return nil, fmt.Errorf("secp256k1 private key: ECPrivateKey version %d, want 1", e.Version)
	}
	if len(e.Parameters) != 0 && !e.Parameters.Equal(oidSecp256k1) {
		return nil, fmt.Errorf("EC private key: curve %v is not secp256k1 (1.3.132.0.10)", e.Parameters)
	}
	if standalone && len(e.Parameters) == 0 {
		return nil, errors.New("EC private key: SEC1 key does not name its curve")
	}
	k, err := NewSecp256k1FromScalar(e.PrivateKey)
	if err != nil {
		return nil, err
	}
	if len(e.PublicKey.Bytes) != 0 {
		pub, err := NewPublicKey(Secp256k1, e.PublicKey.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secp256k1 private key: embedded public key: %w", err)
		}
		if !pub.Equal(k.pub) {
			return nil, errors.New("secp256k1 private key: embedded public key does not match the private key")
		}
	}
	return k, nil
}
