package signer

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/teesign/teesign/internal/keys"
)

// MaxBatch is the largest number of payloads in one /sign/batch request.
const MaxBatch = 1000

// Payload encodings.
const (
	encUTF8   = "utf8"
	encBase64 = "base64"
	encHex    = "hex"
)

// Signature formats.
const (
	// FormatDER is the default: DER ECDSA for secp256k1, raw for ed25519,
	// base64 in the response.
	FormatDER = "der"
	// FormatEthPersonalSign signs the EIP-191 personal message hash of the
	// payload recoverably: 0x-hex r‖s‖v, v = 27/28 (secp256k1 only).
	FormatEthPersonalSign = "eth_personal_sign"
	// FormatEthRaw signs a caller-supplied 32-byte digest (hex) as is.
	FormatEthRaw = "eth_raw"
)

// signRequest is a decoded /sign or /sign/batch body. Byte slices may alias
// the request body.
type signRequest struct {
	keyType  keys.Alg
	encoding string
	format   string
	payload  []byte   // /sign
	payloads [][]byte // /sign/batch
	bundle   bool     // answer with verification bundles
}

// errBadRequest marks decoding errors (400).
type errBadRequest struct{ msg string }

func (e *errBadRequest) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &errBadRequest{msg: fmt.Sprintf(format, a...)}
}

// decodeSignRequest parses body strictly with go-json-experiment: one
// JSON object with only the known fields, each at most once and spelled
// exactly (an escaped spelling is unknown), string values (an array of
// strings for "payloads"), valid UTF-8 without lone surrogates, nothing
// after it. The object is read as a stream straight from body, so a large
// body costs one pass and no copies beyond the payloads. Error messages
// quote at most a short, escaped prefix of a field name.
func decodeSignRequest(body []byte, batch bool) (*signRequest, error) {
	return new(bodyDecoder).decode(body, batch)
}

// bodyDecoder is a JSON decoder and the buffer it reads from, kept for
// reuse between requests: a new decoder allocates its whole state.
type bodyDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

// decode is decodeSignRequest with d's decoder. On return d holds no
// reference to body.
func (d *bodyDecoder) decode(body []byte, batch bool) (*signRequest, error) {
	// The decoder is driven here rather than through json.Unmarshal, which
	// would wrap an error in one naming its position by JSON pointer: for
	// an unknown field that pointer escapes the whole name again, a copy
	// per byte of a name a client can make a megabyte long. A bytes.Buffer
	// is read in place, not copied.
	d.buf = *bytes.NewBuffer(body)
	d.dec.Reset(&d.buf)
	defer func() {
		d.buf = bytes.Buffer{}
		d.dec.Reset(&d.buf)
	}()
	b := &signBody{batch: batch}
	dec := &d.dec
	if err := b.UnmarshalJSONFrom(dec); err != nil {
		if fe := (*fieldError)(nil); errors.As(err, &fe) {
			return nil, badRequest("%s", fe.msg)
		}
		return nil, jsonError(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF { // another value, or bytes that are none
		return nil, badRequest("invalid JSON: trailing data after the object")
	}
	req := &signRequest{payload: b.payload, payloads: b.payloads, bundle: b.bundle}
	keyType, seenKey := b.keyType, b.seen["key_type"]
	enc, seenEnc := b.enc, b.seen["payload_encoding"]
	format, seenFormat := b.format, b.seen["format"]
	if !b.seen["payload"] && !b.seen["payloads"] {
		if batch {
			return nil, badRequest("missing field \"payloads\"")
		}
		return nil, badRequest("missing field \"payload\"")
	}
	var err error
	req.keyType = keys.DefaultAlg
	if seenKey {
		switch string(keyType) {
		case string(keys.Secp256k1):
			req.keyType = keys.Secp256k1
		case string(keys.Ed25519):
			req.keyType = keys.Ed25519
		default:
			return nil, badRequest("invalid key type %s: accepted key types are \"secp256k1\" and \"ed25519\"", quoteShort(string(keyType)))
		}
	}
	req.encoding = encUTF8
	if seenEnc {
		switch string(enc) {
		case encUTF8, encBase64, encHex:
			req.encoding = string(enc)
		default:
			return nil, badRequest("invalid payload_encoding %s: accepted encodings are \"utf8\", \"base64\" and \"hex\"", quoteShort(string(enc)))
		}
	}
	req.format = FormatDER
	if seenFormat {
		switch string(format) {
		case FormatDER, FormatEthPersonalSign, FormatEthRaw:
			req.format = string(format)
		default:
			return nil, badRequest("invalid format %s: accepted formats are \"der\" (default), \"eth_personal_sign\" and \"eth_raw\"", quoteShort(string(format)))
		}
		if req.format != FormatDER && req.keyType != keys.Secp256k1 {
			return nil, badRequest("format %q needs key_type \"secp256k1\"", req.format)
		}
		if req.format == FormatEthRaw {
			if seenEnc && req.encoding != encHex {
				return nil, badRequest("format \"eth_raw\" takes a hex digest: payload_encoding must be \"hex\" or absent")
			}
			req.encoding = encEthDigest
		}
	}
	if batch {
		if len(req.payloads) == 0 || len(req.payloads) > MaxBatch {
			return nil, badRequest("\"payloads\" must hold 1 to %d payloads, not %d", MaxBatch, len(req.payloads))
		}
		for i, p := range req.payloads {
			if req.payloads[i], err = decodePayload(p, req.encoding); err != nil {
				return nil, badRequest("payloads[%d]: %v", i, err)
			}
		}
	} else {
		if req.payload, err = decodePayload(req.payload, req.encoding); err != nil {
			return nil, badRequest("payload: %v", err)
		}
	}
	return req, nil
}

// fieldError is a request that is JSON but not a signing request.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

// signBody decodes a /sign or /sign/batch object from the stream.
type signBody struct {
	batch                bool
	seen                 map[string]bool
	keyType, enc, format []byte
	payload              []byte
	payloads             [][]byte
	bundle               bool
}

// UnmarshalJSONFrom implements json.UnmarshalerFrom.
func (b *signBody) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	b.seen = map[string]bool{}
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return &fieldError{"invalid JSON: body must be a JSON object"}
	}
	payloadField := `"payload"`
	if b.batch {
		payloadField = `"payloads"`
	}
	str := func(name string) ([]byte, error) {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		if v.Kind() != '"' {
			return nil, &fieldError{fmt.Sprintf("field %q must be a string", name)}
		}
		return jsontext.AppendUnquote(nil, v)
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		var field string
		if len(name) <= len(`"payload_encoding"`) { // the longest known name; a longer one is not copied
			field = string(name)
		}
		switch field {
		case `"key_type"`:
			b.keyType, err = str("key_type")
		case `"payload_encoding"`:
			b.enc, err = str("payload_encoding")
		case `"format"`:
			b.format, err = str("format")
		case `"bundle"`:
			var v jsontext.Value
			if v, err = dec.ReadValue(); err == nil {
				switch v.Kind() {
				case 't', 'f':
					b.bundle = v.Kind() == 't'
				default:
					return &fieldError{"field \"bundle\" must be true or false"}
				}
			}
		case payloadField:
			if !b.batch {
				b.payload, err = str("payload")
				break
			}
			err = b.readPayloads(dec)
		default:
			return &fieldError{"unknown field " + quoteShort(unquotePrefix(name))}
		}
		if err != nil {
			return err
		}
		b.seen[field[1:len(field)-1]] = true
	}
	_, err = dec.ReadToken()
	return err
}

func (b *signBody) readPayloads(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '[' {
		return &fieldError{"field \"payloads\" must be an array of strings"}
	}
	b.payloads = [][]byte{}
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return err
		}
		if v.Kind() != '"' {
			return &fieldError{"field \"payloads\" must be an array of strings"}
		}
		if len(b.payloads) == MaxBatch {
			return &fieldError{fmt.Sprintf("\"payloads\" must hold 1 to %d payloads, not more", MaxBatch)}
		}
		p, err := jsontext.AppendUnquote(nil, v)
		if err != nil {
			return err
		}
		b.payloads = append(b.payloads, p)
	}
	_, err = dec.ReadToken()
	return err
}

// jsonError describes a JSON syntax error by its kind and position only:
// it never repeats the input.
func jsonError(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON: body must be a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON: the body ends before the object does (expected more)")
	case errors.As(err, &se) && se.Err == jsontext.ErrDuplicateName:
		return badRequest("duplicate field %s", quoteShort(se.JSONPointer.LastToken()))
	case errors.As(err, &se):
		return badRequest("invalid JSON at byte %d: strings must be valid UTF-8, with no raw control character and no lone surrogate escape (send binary payloads as base64 or hex)", se.ByteOffset)
	}
	return badRequest("invalid JSON: body must be a JSON object")
}

// unquotePrefix returns a name the decoder has read (a valid JSON string)
// unquoted, or at least as much of it as quoteShort shows: a name without
// an escape in its first 33 bytes is sliced, not unquoted whole, so an
// unknown name of a megabyte costs no second pass and no copy.
func unquotePrefix(name []byte) string {
	raw := name[1 : len(name)-1]
	head := raw[:min(len(raw), 33)]
	if bytes.IndexByte(head, '\\') < 0 {
		return string(head)
	}
	n, _ := jsontext.AppendUnquote(nil, name)
	return string(n)
}

// quoteShort quotes at most 32 bytes of s, escaped.
func quoteShort(s string) string {
	if len(s) > 32 {
		s = s[:32]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return strconv.QuoteToASCII(s) + "…"
	}
	return strconv.QuoteToASCII(s)
}

// encEthDigest is the payload form of eth_raw: a 32-byte digest as hex,
// with or without 0x.
const encEthDigest = "eth_digest"

func decodePayload(p []byte, enc string) ([]byte, error) {
	switch enc {
	case encEthDigest:
		if bytes.HasPrefix(p, []byte("0x")) || bytes.HasPrefix(p, []byte("0X")) {
			p = p[2:]
		}
		if len(p) != 64 {
			return nil, errors.New("eth_raw needs a 32-byte digest as 64 hex digits")
		}
		out := make([]byte, 32)
		if _, err := hex.Decode(out, p); err != nil {
			return nil, errors.New("not valid hex")
		}
		return out, nil
	case encBase64:
		if bytes.ContainsAny(p, "\r\n") { // Strict() alone skips them
			return nil, errors.New("not valid standard base64 (no line breaks)")
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(p)))
		n, err := base64.StdEncoding.Strict().Decode(out, p)
		if err != nil {
			return nil, errors.New("not valid standard base64")
		}
		return out[:n], nil
	case encHex:
		out := make([]byte, hex.DecodedLen(len(p)))
		if _, err := hex.Decode(out, p); err != nil {
			return nil, errors.New("not valid hex")
		}
		return out, nil
	}
	return p, nil
}
