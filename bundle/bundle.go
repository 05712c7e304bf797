// Package bundle reads and writes teesign's verification bundle: one JSON
// document holding everything a verifier needs to check a signature but
// the workload it expects (a policy, or a compose file): the TEE, the key
// type, the signature format, the public key, the quote that binds it, a
// SEV-SNP certificate table, the message and the signature.
//
// A bundle proves nothing by being well formed: pass it to
// verify.VerifyBundle with the workload the reader expects. Decode checks
// only that it is one, strictly: unknown, duplicate or case-folded member
// names, wrong types, trailing data, an unknown media type, and a public key
// or quote that disagree with the declared key type or TEE are errors.
//
// The JSON Schema of the format is docs/bundle.schema.json.
package bundle

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
)

// MediaType identifies version 1 of the format; it is the bundle's
// media_type member.
const MediaType = "application/vnd.teesign.bundle.v1+json"

// MaxSize is the largest bundle Decode reads: a TDX quote as hex is
// about 10 KiB, and a message may be up to the signing server's 1 MiB
// body limit (as base64).
const MaxSize = 2 << 20

// Signature formats, as the signing server's "format" names them.
const (
	// FormatDER is a DER ECDSA signature (secp256k1) or a raw 64-byte
	// Ed25519 signature over the message.
	FormatDER = "der"
	// FormatEthPersonalSign is a 65-byte r‖s‖v signature over the EIP-191
	// personal message hash of the message.
	FormatEthPersonalSign = "eth_personal_sign"
	// FormatEthRaw is a 65-byte r‖s‖v signature over a 32-byte digest,
	// which is the message.
	FormatEthRaw = "eth_raw"
)

// Bundle is a signature with its evidence. In JSON, byte fields are
// standard padded base64.
type Bundle struct {
	// MediaType is always MediaType.
	MediaType string `json:"media_type"`
	// TEE is "tdx" or "sev-snp": the kind of Quote.
	TEE string `json:"tee"`
	// KeyType is "secp256k1" or "ed25519": the type of PublicKey.
	KeyType string `json:"key_type"`
	// SignatureFormat is FormatDER, FormatEthPersonalSign or FormatEthRaw.
	SignatureFormat string `json:"signature_format"`
	// PublicKey is the signing key as SPKI PEM; the quote binds it.
	PublicKey string `json:"public_key"`
	// Quote is the attestation as the VM's file holds it: TDX as hex,
	// SEV-SNP as base64 (any form package verify reads is accepted).
	Quote string `json:"quote"`
	// CertTable is the SEV-SNP certificate table the host returned with
	// the report (AMD's GUID table), when there is one.
	CertTable []byte `json:"cert_table,omitempty"`
	// Message is the signed message (for FormatEthRaw, the digest).
	Message []byte `json:"message"`
	// Signature is the signature's bytes.
	Signature []byte `json:"signature"`
}

// Decode reads a bundle strictly and checks that it is consistent: the
// media type is MediaType, the public key is a key of KeyType, the quote
// is a quote of TEE, the format suits the key type, and a certificate
// table comes only with SEV-SNP. It does not verify anything.
func Decode(data []byte) (*Bundle, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("bundle: %d bytes, over the %d-byte limit", len(data), MaxSize)
	}
	var b Bundle
	if err := json.Unmarshal(data, &b, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("bundle: not a teesign bundle: %w", shortErr(err))
	}
	if b.Message == nil { // "" decodes to an empty, non-nil message
		return nil, errors.New("bundle: message is missing")
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// Check reports whether b is consistent, as Decode requires.
func (b *Bundle) Check() error {
	if b.MediaType != MediaType {
		if b.MediaType == "" {
			return fmt.Errorf("bundle: media_type is missing (want %q)", MediaType)
		}
		return fmt.Errorf("bundle: media_type %s is not %q: this teesign reads version 1 bundles", short(b.MediaType), MediaType)
	}
	alg, err := keys.ParseAlg(b.KeyType)
	if err != nil || b.KeyType == "" {
		return fmt.Errorf("bundle: key_type %s: want \"secp256k1\" or \"ed25519\"", short(b.KeyType))
	}
	switch b.TEE {
	case string(quote.TDX), string(quote.SEVSNP):
	default:
		return fmt.Errorf("bundle: tee %s: want \"tdx\" or \"sev-snp\"", short(b.TEE))
	}
	switch b.SignatureFormat {
	case FormatDER:
	case FormatEthPersonalSign, FormatEthRaw:
		if alg != keys.Secp256k1 {
			return fmt.Errorf("bundle: signature_format %s needs key_type secp256k1, not %s", b.SignatureFormat, alg)
		}
		if b.SignatureFormat == FormatEthRaw && len(b.Message) != 32 {
			return fmt.Errorf("bundle: signature_format eth_raw signs a 32-byte digest, and the message has %d bytes", len(b.Message))
		}
	default:
		return fmt.Errorf("bundle: signature_format %s: want \"der\", \"eth_personal_sign\" or \"eth_raw\"", short(b.SignatureFormat))
	}
	if b.PublicKey == "" {
		return errors.New("bundle: public_key is missing")
	}
	pub, err := keys.ParsePublicKeyPEM([]byte(b.PublicKey))
	if err != nil {
		return fmt.Errorf("bundle: public_key: %w", err)
	}
	if pub.Alg() != alg {
		return fmt.Errorf("bundle: key_type says %s but public_key is an %s key", alg, pub.Alg())
	}
	if b.Quote == "" {
		return errors.New("bundle: quote is missing")
	}
	_, kind, err := quote.Decode([]byte(b.Quote))
	if err != nil {
		return fmt.Errorf("bundle: quote: %w", err)
	}
	if string(kind) != b.TEE {
		return fmt.Errorf("bundle: tee says %s but the quote is a %s quote", b.TEE, kind)
	}
	if len(b.CertTable) > 0 && kind != quote.SEVSNP {
		return errors.New("bundle: cert_table belongs to SEV-SNP bundles only")
	}
	if len(b.Signature) == 0 {
		return errors.New("bundle: signature is missing")
	}
	return nil
}

// Marshal encodes b as indented JSON with a trailing newline.
func (b *Bundle) Marshal() ([]byte, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	out, err := json.Marshal(b, json.Deterministic(true), jsontext.WithIndent("  "))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// SignatureText is the signature as the signing server answers it:
// base64 for FormatDER, 0x-hex for the Ethereum formats.
func (b *Bundle) SignatureText() string {
	if b.SignatureFormat == FormatEthPersonalSign || b.SignatureFormat == FormatEthRaw {
		return "0x" + hex.EncodeToString(b.Signature)
	}
	return base64.StdEncoding.EncodeToString(b.Signature)
}

// short quotes at most 32 bytes of s, escaped: errors never echo much of
// the input.
func short(s string) string {
	if len(s) > 32 {
		return fmt.Sprintf("%+q…", strings.ToValidUTF8(s[:32], ""))
	}
	return fmt.Sprintf("%+q", s)
}

func shortErr(err error) error {
	s := err.Error()
	if len(s) > 200 {
		return errors.New(strings.ToValidUTF8(s[:200], "") + "…")
	}
	return err
}
