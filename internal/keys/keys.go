// Package keys holds teesign's two signing algorithms, secp256k1 and ed25519:
// key generation, signing, strict verification, and the report_data layout
// that binds a public key into an attestation quote.
//
// secp256k1 signatures are ECDSA over SHA-256 of the message with an RFC 6979
// nonce, always low-S, DER encoded. ed25519 signatures are pure RFC 8032.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Alg names a signing algorithm. Its string form is the key_type of the
// signing API and the <alg> of file names.
type Alg string

const (
	// Secp256k1 is ECDSA on secp256k1 over SHA-256, low-S, DER signatures.
	Secp256k1 Alg = "secp256k1"
	// Ed25519 is pure Ed25519 (RFC 8032).
	Ed25519 Alg = "ed25519"
)

// DefaultAlg is the algorithm used wherever a key type is optional.
const DefaultAlg = Secp256k1

// Algs returns every supported algorithm, in a fixed order.
func Algs() []Alg { return []Alg{Secp256k1, Ed25519} }

// ParseAlg returns the algorithm named s (exactly "secp256k1" or "ed25519").
func ParseAlg(s string) (Alg, error) {
	switch Alg(s) {
	case Secp256k1, Ed25519:
		return Alg(s), nil
	}
	return "", fmt.Errorf("invalid key type %q: accepted key types are %q and %q", s, Secp256k1, Ed25519)
}

// PrivateKey is a signing key of one algorithm. It is safe for concurrent use.
type PrivateKey struct {
	alg Alg
	k1  *secp256k1.PrivateKey
	ed  ed25519.PrivateKey
	pub *PublicKey
}

// PublicKey is a verification key of one algorithm.
type PublicKey struct {
	alg Alg
	k1  *secp256k1.PublicKey
	ed  ed25519.PublicKey
}

// Generate makes a new key pair from the operating system's random source.
func Generate(alg Alg) (*PrivateKey, error) {
	switch alg {
	case Secp256k1:
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			return nil, fmt.Errorf("generate secp256k1 key: %w", err)
		}
		return newSecp256k1(k), nil
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return newEd25519(k), nil
	}
	return nil, fmt.Errorf("generate key: unsupported algorithm %q", alg)
}

// NewSecp256k1FromScalar returns the secp256k1 key with the given 32-byte
// big-endian scalar. It rejects a wrong length, 0 and values ≥ the group order.
func NewSecp256k1FromScalar(b []byte) (*PrivateKey, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("secp256k1 private key: scalar is %d bytes, want 32", len(b))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow {
		return nil, errors.New("secp256k1 private key: scalar is not below the group order N")
	}
	if s.IsZero() {
		return nil, errors.New("secp256k1 private key: scalar is zero")
	}
	return newSecp256k1(secp256k1.NewPrivateKey(&s)), nil
}

// NewEd25519FromSeed returns the ed25519 key with the given 32-byte RFC 8032 seed.
func NewEd25519FromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ed25519 private key: seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return newEd25519(ed25519.NewKeyFromSeed(seed)), nil
}

func newSecp256k1(k *secp256k1.PrivateKey) *PrivateKey {
	return &PrivateKey{alg: Secp256k1, k1: k, pub: &PublicKey{alg: Secp256k1, k1: k.PubKey()}}
}

func newEd25519(k ed25519.PrivateKey) *PrivateKey {
	return &PrivateKey{alg: Ed25519, ed: k, pub: &PublicKey{alg: Ed25519, ed: k.Public().(ed25519.PublicKey)}}
}

// Alg returns the key's algorithm.
func (k *PrivateKey) Alg() Alg { return k.alg }

// Public returns the matching public key.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// Sign signs msg: secp256k1 gives a low-S DER ECDSA signature over
// SHA-256(msg) with an RFC 6979 nonce, ed25519 a 64-byte pure signature.
// Both are deterministic: the same key and message give the same signature.
func (k *PrivateKey) Sign(msg []byte) []byte {
	if k.alg == Ed25519 {
		return ed25519.Sign(k.ed, msg)
	}
	h := sha256.Sum256(msg)
	return ecdsa.Sign(k.k1, h[:]).Serialize()
}

// SignDigest signs a 32-byte digest with secp256k1 ECDSA (RFC 6979, low-S)
// and returns r, s and the recovery id (0 or 1) the signature needs for
// public key recovery. The digest is signed as given: no hash is applied.
func (k *PrivateKey) SignDigest(digest []byte) (r, s [32]byte, recID byte, err error) {
	if k.alg != Secp256k1 {
		return r, s, 0, fmt.Errorf("sign digest: needs a secp256k1 key, not %s", k.alg)
	}
	if len(digest) != 32 {
		return r, s, 0, fmt.Errorf("sign digest: digest is %d bytes, want 32", len(digest))
	}
	compact := ecdsa.SignCompact(k.k1, digest, false) // [27+recid] ‖ r ‖ s
	copy(r[:], compact[1:33])
	copy(s[:], compact[33:65])
	return r, s, compact[0] - 27, nil
}

// Alg returns the key's algorithm.
func (p *PublicKey) Alg() Alg { return p.alg }

// Bytes returns the raw public key: the 65-byte uncompressed point for
// secp256k1, the 32-byte key for ed25519.
func (p *PublicKey) Bytes() []byte {
	if p.alg == Ed25519 {
		return append([]byte(nil), p.ed...)
	}
	return p.k1.SerializeUncompressed()
}

// Equal reports whether p and q are the same key of the same algorithm.
func (p *PublicKey) Equal(q *PublicKey) bool {
	if p == nil || q == nil || p.alg != q.alg {
		return false
	}
	return subtle.ConstantTimeCompare(p.Bytes(), q.Bytes()) == 1
}

// ErrBadSignature is returned (wrapped) by Verify for a signature that does
// not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks sig over msg. For secp256k1 it requires strict DER and low S,
// as teesign's signer always produces.
func (p *PublicKey) Verify(msg, sig []byte) error {
	if p.alg == Ed25519 {
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("ed25519 signature is %d bytes, want %d: %w", len(sig), ed25519.SignatureSize, ErrBadSignature)
		}
		if !ed25519.Verify(p.ed, msg, sig) {
			return fmt.Errorf("ed25519: %w", ErrBadSignature)
		}
		return nil
	}
	parsed, err := ecdsa.ParseDERSignature(sig)
	if err != nil {
		return fmt.Errorf("secp256k1 signature is not valid DER (%v): %w", err, ErrBadSignature)
	}
	s := parsed.S()
	if s.IsOverHalfOrder() {
		return fmt.Errorf("secp256k1 signature has a high S value (only low-S is accepted): %w", ErrBadSignature)
	}
	h := sha256.Sum256(msg)
	if !parsed.Verify(h[:], p.k1) {
		return fmt.Errorf("secp256k1: %w", ErrBadSignature)
	}
	return nil
}

// NewPublicKey parses a raw public key: for secp256k1 a 65-byte uncompressed
// or 33-byte compressed point on the curve, for ed25519 32 bytes.
func NewPublicKey(alg Alg, raw []byte) (*PublicKey, error) {
	switch alg {
	case Ed25519:
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 public key is %d bytes, want %d", len(raw), ed25519.PublicKeySize)
		}
		return &PublicKey{alg: Ed25519, ed: append(ed25519.PublicKey(nil), raw...)}, nil
	case Secp256k1:
		if len(raw) != 65 && len(raw) != 33 {
			return nil, fmt.Errorf("secp256k1 public key is %d bytes, want 65 (uncompressed) or 33 (compressed)", len(raw))
		}
		k, err := secp256k1.ParsePubKey(raw)
		if err != nil {
			return nil, fmt.Errorf("secp256k1 public key: %w", err)
		}
		return &PublicKey{alg: Secp256k1, k1: k}, nil
	}
	return nil, fmt.Errorf("public key: unsupported algorithm %q", alg)
}

// ReportDataSize is the size of a TEE report's report_data field.
const ReportDataSize = 64

// ReportData returns the 64 bytes that bind p into a quote: for ed25519 the
// raw key then 32 zero bytes; for secp256k1 X‖Y of the uncompressed point.
func (p *PublicKey) ReportData() [ReportDataSize]byte {
	var rd [ReportDataSize]byte
	if p.alg == Ed25519 {
		copy(rd[:], p.ed)
	} else {
		copy(rd[:], p.k1.SerializeUncompressed()[1:])
	}
	return rd
}

// PublicKeyFromReportData reads the public key bound in a report_data field.
// secp256k1 accepts X‖Y, or a 33-byte compressed point followed by 31 zero
// bytes; ed25519 needs the key followed by 32 zero bytes.
func PublicKeyFromReportData(alg Alg, rd []byte) (*PublicKey, error) {
	if len(rd) != ReportDataSize {
		return nil, fmt.Errorf("report_data is %d bytes, want %d", len(rd), ReportDataSize)
	}
	switch alg {
	case Ed25519:
		if !allZero(rd[32:]) {
			return nil, errors.New("report_data does not bind an ed25519 key: bytes 32..63 must be zero")
		}
		return NewPublicKey(Ed25519, rd[:32])
	case Secp256k1:
		if (rd[0] == 0x02 || rd[0] == 0x03) && allZero(rd[33:]) {
			if k, err := NewPublicKey(Secp256k1, rd[:33]); err == nil {
				return k, nil
			}
		}
		k, err := NewPublicKey(Secp256k1, append([]byte{0x04}, rd...))
		if err != nil {
			return nil, fmt.Errorf("report_data does not bind a secp256k1 key (neither X‖Y nor a compressed point): %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("report_data: unsupported algorithm %q", alg)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
