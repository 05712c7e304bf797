package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/keys"
)

// VerifyBundle verifies a bundle (package bundle): Verify with its quote,
// message, signature, key type, public key, signature format and
// certificate table. The bundle does not say which workload to expect:
// o does (Policy, Workload or AnyWorkload), with the trust options. Any of
// o.KeyType, o.PublicKeyPEM and o.Format that is set must agree with the
// bundle (an error otherwise); o.CertTable, when set, is used in place of the bundle's.
func VerifyBundle(ctx context.Context, b *bundle.Bundle, o Options) (*Result, error) {
	if err := b.Check(); err != nil {
		return nil, err
	}
	if o.KeyType != "" && o.KeyType != b.KeyType {
		return nil, fmt.Errorf("key type %s disagrees with the bundle's %s", o.KeyType, b.KeyType)
	}
	if o.Format != "" && o.Format != b.SignatureFormat {
		return nil, fmt.Errorf("signature format %s disagrees with the bundle's %s", o.Format, b.SignatureFormat)
	}
	o.KeyType, o.Format = b.KeyType, b.SignatureFormat
	bundled, err := keys.ParsePublicKeyPEM([]byte(b.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("bundle: public_key: %w", err)
	}
	if o.PublicKeyPEM != nil {
		given, err := keys.ParsePublicKeyPEM(o.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("expected public key (Options.PublicKeyPEM): %w", err)
		}
		if !given.Equal(bundled) {
			return nil, errors.New("the public key given is not the bundle's public_key")
		}
	}
	o.PublicKeyPEM = []byte(b.PublicKey)
	if o.CertTable == nil {
		o.CertTable = b.CertTable
	}
	return Verify(ctx, []byte(b.Quote), b.Message, b.Signature, o)
}
