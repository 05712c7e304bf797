package keystore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/teesign/teesign/internal/keys"
)

// Sealer derives the key that seals private keys at rest from the TEE:
// a key only the same workload on the same machine can derive again.
type Sealer interface {
	// SealParams returns the parameters of a new seal, recorded with it
	// (for SEV-SNP, the TCB version mixed into the key).
	SealParams() ([]byte, error)
	// SealingKey derives the 32-byte key for recorded parameters.
	SealingKey(params []byte) ([]byte, error)
}

// sealedFile is a sealed private key: AES-256-GCM over its PEM, the
// algorithm and the identity bound in as additional data.
type sealedFile struct {
	Version    int    `json:"version"`
	Alg        string `json:"alg"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

func additionalData(alg keys.Alg, id Identity) []byte {
	d := sha256.Sum256([]byte(id.String()))
	return append([]byte("teesign sealed key v1\x00"+string(alg)+"\x00"), d[:]...)
}

func seal(key []byte, alg keys.Alg, id Identity, plaintext []byte) ([]byte, error) {
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	f := sealedFile{Version: 1, Alg: string(alg), Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plaintext, additionalData(alg, id))}
	return json.Marshal(f)
}

func unseal(key []byte, alg keys.Alg, id Identity, data []byte) ([]byte, error) {
	var f sealedFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		return nil, errors.New("not a sealed key file of this version")
	}
	if f.Alg != string(alg) {
		return nil, fmt.Errorf("it holds a %s key", f.Alg)
	}
	aead, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(f.Nonce) != aead.NonceSize() {
		return nil, errors.New("malformed nonce")
	}
	pt, err := aead.Open(nil, f.Nonce, f.Ciphertext, additionalData(alg, id))
	if err != nil {
		return nil, errors.New("authentication failed")
	}
	return pt, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("sealing key is %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
