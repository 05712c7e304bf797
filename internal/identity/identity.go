// Package identity is an attested key pair: what provisioning produces and
// the signing server serves.
package identity

import (
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
)

// Identity is one algorithm's key pair and the quote that binds it.
type Identity struct {
	Key *keys.PrivateKey
	// Evidence is the quote (nil only in tests of the signing server).
	Evidence *quote.Evidence
	// PublicPEM and QuoteText are the bytes of the public key and
	// attestation files.
	PublicPEM []byte
	QuoteText []byte
}

// New binds key and evidence, computing the file bytes.
func New(key *keys.PrivateKey, ev *quote.Evidence) *Identity {
	return &Identity{Key: key, Evidence: ev, PublicPEM: key.Public().MarshalPEM(), QuoteText: quote.Encode(ev.Kind, ev.Raw)}
}
