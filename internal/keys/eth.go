package keys

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"golang.org/x/crypto/sha3"
)

// Keccak256 is Ethereum's hash (the original Keccak, not SHA3-256).
func Keccak256(data ...[]byte) []byte {
	h := sha3.NewLegacyKeccak256()
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

// EthPersonalHash is the EIP-191 personal message hash:
// keccak256("\x19Ethereum Signed Message:\n" ‖ decimal length ‖ msg).
func EthPersonalHash(msg []byte) []byte {
	return Keccak256([]byte("\x19Ethereum Signed Message:\n"+strconv.Itoa(len(msg))), msg)
}

// EthSignatureSize is the size of an Ethereum signature r‖s‖v.
const EthSignatureSize = 65

// SignEth signs a 32-byte digest as Ethereum does: r‖s‖v with low S and
// v = 27 + recovery id, so that ecrecover(digest, v, r, s) gives the
// signer's address. The digest is signed as given.
func (k *PrivateKey) SignEth(digest []byte) ([]byte, error) {
	r, s, recID, err := k.SignDigest(digest)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, EthSignatureSize)
	out = append(out, r[:]...)
	out = append(out, s[:]...)
	return append(out, 27+recID), nil
}

// RecoverEth returns the secp256k1 public key that made the Ethereum
// signature sig (r‖s‖v, v 27/28 or 0/1) over digest. It rejects high S.
func RecoverEth(digest, sig []byte) (*PublicKey, error) {
	if len(digest) != 32 {
		return nil, fmt.Errorf("ethereum digest is %d bytes, want 32", len(digest))
	}
	if len(sig) != EthSignatureSize {
		return nil, fmt.Errorf("ethereum signature is %d bytes, want 65 (r‖s‖v): %w", len(sig), ErrBadSignature)
	}
	v := sig[64]
	if v >= 27 {
		v -= 27
	}
	if v > 1 {
		return nil, fmt.Errorf("ethereum signature: v must be 27 or 28: %w", ErrBadSignature)
	}
	compact := make([]byte, 65)
	compact[0] = 27 + v
	copy(compact[1:], sig[:64])
	pub, _, err := ecdsa.RecoverCompact(compact, digest)
	if err != nil {
		return nil, fmt.Errorf("ethereum signature: %v: %w", err, ErrBadSignature)
	}
	// Low S only, as EIP-2 requires.
	var s [32]byte
	copy(s[:], sig[32:64])
	if isHighS(s) {
		return nil, fmt.Errorf("ethereum signature has a high S value: %w", ErrBadSignature)
	}
	return &PublicKey{alg: Secp256k1, k1: pub}, nil
}

// halfOrder is N/2 for secp256k1, big-endian.
var halfOrder = mustHex("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")

func isHighS(s [32]byte) bool {
	return bytes.Compare(s[:], halfOrder) == 1
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// EthAddress returns the EIP-55 checksummed Ethereum address of a secp256k1
// key: the last 20 bytes of keccak256(X‖Y), which is keccak256 of the key's
// report_data.
func (p *PublicKey) EthAddress() (string, error) {
	if p.alg != Secp256k1 {
		return "", errors.New("ethereum address: needs a secp256k1 key")
	}
	return EIP55(Keccak256(p.k1.SerializeUncompressed()[1:])[12:]), nil
}

// EIP55 returns a 20-byte address in EIP-55 mixed-case checksum form.
func EIP55(addr []byte) string {
	lower := hex.EncodeToString(addr)
	h := Keccak256([]byte(lower))
	out := []byte("0x" + lower)
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		if c >= 'a' && c <= 'f' && (h[i/2]>>(4*(1-uint(i%2))))&0xf >= 8 {
			out[2+i] = c - 32
		}
	}
	return string(out)
}
