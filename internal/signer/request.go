package signer

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

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
}

// errBadRequest marks decoding errors (400).
type errBadRequest struct{ msg string }

func (e *errBadRequest) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &errBadRequest{msg: fmt.Sprintf(format, a...)}
}

// decodeSignRequest parses body strictly: one JSON object with only the
// known fields, each at most once, string values (an array of strings for
// "payloads"), valid UTF-8, no lone surrogates, nothing after it. It
// allocates only for strings with escapes and for the payload list.
func decodeSignRequest(body []byte, batch bool) (*signRequest, error) {
	d := decoder{b: body}
	req := &signRequest{}
	var seenKey, seenPayload, seenEnc, seenFormat bool
	var keyType, enc, format []byte
	var err error
	d.ws()
	if !d.eat('{') {
		return nil, badRequest("invalid JSON: body must be a JSON object")
	}
	d.ws()
	if !d.eat('}') {
		for {
			d.ws()
			name, err := d.str()
			if err != nil {
				return nil, err
			}
			d.ws()
			if !d.eat(':') {
				return nil, badRequest("invalid JSON: expected ':' after %q", name)
			}
			d.ws()
			field := string(name) // does not allocate in a switch comparison
			switch {
			case field == "key_type":
				if seenKey {
					return nil, badRequest("duplicate field %q", field)
				}
				seenKey = true
				if keyType, err = d.strValue(field); err != nil {
					return nil, err
				}
			case field == "payload_encoding":
				if seenEnc {
					return nil, badRequest("duplicate field %q", field)
				}
				seenEnc = true
				if enc, err = d.strValue(field); err != nil {
					return nil, err
				}
			case field == "format":
				if seenFormat {
					return nil, badRequest("duplicate field %q", field)
				}
				seenFormat = true
				if format, err = d.strValue(field); err != nil {
					return nil, err
				}
			case field == "payload" && !batch:
				if seenPayload {
					return nil, badRequest("duplicate field %q", field)
				}
				seenPayload = true
				if req.payload, err = d.strValue(field); err != nil {
					return nil, err
				}
			case field == "payloads" && batch:
				if seenPayload {
					return nil, badRequest("duplicate field %q", field)
				}
				seenPayload = true
				if req.payloads, err = d.strArray(field); err != nil {
					return nil, err
				}
			default:
				return nil, badRequest("unknown field %q", field)
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat('}') {
				break
			}
			return nil, badRequest("invalid JSON: expected ',' or '}' in object")
		}
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, badRequest("invalid JSON: trailing data after the object")
	}
	if !seenPayload {
		if batch {
			return nil, badRequest("missing field \"payloads\"")
		}
		return nil, badRequest("missing field \"payload\"")
	}
	req.keyType = keys.DefaultAlg
	if seenKey {
		switch string(keyType) {
		case string(keys.Secp256k1):
			req.keyType = keys.Secp256k1
		case string(keys.Ed25519):
			req.keyType = keys.Ed25519
		default:
			return nil, badRequest("invalid key type %q: accepted key types are \"secp256k1\" and \"ed25519\"", keyType)
		}
	}
	req.encoding = encUTF8
	if seenEnc {
		switch string(enc) {
		case encUTF8, encBase64, encHex:
			req.encoding = string(enc)
		default:
			return nil, badRequest("invalid payload_encoding %q: accepted encodings are \"utf8\", \"base64\" and \"hex\"", enc)
		}
	}
	req.format = FormatDER
	if seenFormat {
		switch string(format) {
		case FormatDER, FormatEthPersonalSign, FormatEthRaw:
			req.format = string(format)
		default:
			return nil, badRequest("invalid format %q: accepted formats are \"der\" (default), \"eth_personal_sign\" and \"eth_raw\"", format)
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

// encEthDigest is the payload form of eth_raw: a 32-byte digest as hex,
// with or without 0x.
const encEthDigest = "eth_digest"

func decodePayload(p []byte, enc string) ([]byte, error) {
	switch enc {
	case encEthDigest:
		if len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') {
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

type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) strValue(field string) ([]byte, error) {
	if d.i < len(d.b) && d.b[d.i] != '"' {
		return nil, badRequest("field %q must be a string", field)
	}
	return d.str()
}

func (d *decoder) strArray(field string) ([][]byte, error) {
	if !d.eat('[') {
		return nil, badRequest("field %q must be an array of strings", field)
	}
	var out [][]byte
	d.ws()
	if d.eat(']') {
		return out, nil
	}
	for {
		d.ws()
		if len(out) == MaxBatch {
			return nil, badRequest("\"payloads\" must hold 1 to %d payloads", MaxBatch)
		}
		s, err := d.strValue(field + " element")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat(']') {
			return out, nil
		}
		return nil, badRequest("invalid JSON: expected ',' or ']' in array")
	}
}

// str reads a JSON string. Without escapes it returns a sub-slice of the
// input; it rejects control characters, invalid UTF-8 and lone surrogates.
func (d *decoder) str() ([]byte, error) {
	if !d.eat('"') {
		return nil, badRequest("invalid JSON: expected a string")
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !utf8.Valid(s) {
				return nil, badRequest("invalid UTF-8 in a string: send binary payloads as base64 or hex")
			}
			return s, nil
		case c == '\\':
			return d.strSlow(start)
		case c < 0x20:
			return nil, badRequest("invalid JSON: control character in a string")
		}
		d.i++
	}
	return nil, badRequest("invalid JSON: unterminated string")
}

func (d *decoder) strSlow(start int) ([]byte, error) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return nil, badRequest("invalid UTF-8 in a string: send binary payloads as base64 or hex")
			}
			return out, nil
		case c < 0x20:
			return nil, badRequest("invalid JSON: control character in a string")
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.b) {
			break
		}
		e := d.b[d.i]
		d.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, badRequest("invalid JSON: bad \\u escape")
			}
			if r >= 0xD800 && r < 0xDC00 { // high surrogate: a low one must follow
				if !(d.eat('\\') && d.eat('u')) {
					return nil, badRequest("invalid string: lone UTF-16 surrogate \\u%04x", r)
				}
				lo, ok := d.hex4()
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return nil, badRequest("invalid string: lone UTF-16 surrogate \\u%04x", r)
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			} else if r >= 0xDC00 && r <= 0xDFFF {
				return nil, badRequest("invalid string: lone UTF-16 surrogate \\u%04x", r)
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, badRequest("invalid JSON: bad escape \\%c", e)
		}
	}
	return nil, badRequest("invalid JSON: unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}
