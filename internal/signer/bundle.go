package signer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/identity"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/quote"
)

// bundleHead is the part of alg's verification bundle (package bundle)
// that no request changes, as JSON without its closing brace.
func bundleHead(alg keys.Alg, id *identity.Identity) ([]byte, error) {
	_, kind, err := quote.Decode(id.QuoteText)
	if err != nil {
		return nil, fmt.Errorf("signer: the %s quote: %w", alg, err)
	}
	head := struct {
		MediaType string `json:"media_type"`
		TEE       string `json:"tee"`
		KeyType   string `json:"key_type"`
		PublicKey string `json:"public_key"`
		Quote     string `json:"quote"`
		CertTable string `json:"cert_table,omitempty"`
	}{bundle.MediaType, string(kind), string(alg), string(id.PublicPEM), strings.TrimSuffix(string(id.QuoteText), "\n"), ""}
	if id.Evidence != nil { // an empty table is omitted
		head.CertTable = base64.StdEncoding.EncodeToString(id.Evidence.CertTable)
	}
	b, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

// appendBundle appends the bundle of one signature.
func (s *Server) appendBundle(dst []byte, alg keys.Alg, format string, msg, sig []byte) []byte {
	dst = append(dst, s.bundleHead[algIndex(alg)]...)
	dst = append(dst, `,"signature_format":"`...)
	dst = append(dst, format...)
	dst = append(appendB64(append(dst, `","message":"`...), msg), `","signature":"`...)
	return append(appendB64(dst, sig), `"}`...)
}

// bundleBytes is about how many bytes the bundles of req take.
func (s *Server) bundleBytes(req *signRequest) int64 {
	per := int64(len(s.bundleHead[algIndex(req.keyType)])) + 256 // format, names, signature
	if req.payloads == nil {
		return per + int64(len(req.payload))*4/3
	}
	n := int64(0)
	for _, p := range req.payloads {
		n += per + int64(len(p))*4/3
	}
	return n
}
