package simtee

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/teesign/teesign/internal/atomicfile"
)

// chainFile is a simulated chain as kept in the state directory: its
// certificates (root first) and the private keys the simulated TEE still
// signs with. Issuing keys (root, intermediate) are not kept.
type chainFile struct {
	certs []*x509.Certificate
	keys  []crypto.Signer
}

func (c *chainFile) marshal() []byte {
	var out []byte
	for _, cert := range c.certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	for _, k := range c.keys {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic("simtee: marshal key: " + err.Error())
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	}
	return out
}

func loadChain(path string, nCerts, nKeys int) (*chainFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &chainFile{}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			c.certs = append(c.certs, cert)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("%s: unexpected key type %T", path, k)
			}
			c.keys = append(c.keys, s)
		}
	}
	if len(c.certs) != nCerts || len(c.keys) != nKeys {
		return nil, fmt.Errorf("%s: want %d certificates and %d keys, found %d and %d (remove the file to make a new simulated chain)", path, nCerts, nKeys, len(c.certs), len(c.keys))
	}
	return c, nil
}

// loadOrCreate loads the chain at path or, when there is none, makes one
// with create and saves it atomically (mode 0600).
func loadOrCreate(path string, nCerts, nKeys int, create func() (*chainFile, error)) (*chainFile, error) {
	c, err := loadChain(path, nCerts, nKeys)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load simulated chain: %w", err)
	}
	c, err = create()
	if err != nil {
		return nil, fmt.Errorf("create simulated chain: %w", err)
	}
	if err := atomicfile.Write(path, c.marshal(), 0o600); err != nil {
		return nil, err
	}
	return c, nil
}

// exportRoots writes certificates as PEM to path (mode 0600, as everything
// in the state directory) when its content differs.
func exportRoots(path string, certs ...*x509.Certificate) error {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	_, err := atomicfile.WriteIfChanged(path, out, 0o600)
	return err
}

// simSealingKey derives a simulated sealing key: SHA-256 over the
// simulated chip's secret key, the simulator's name, the measurement it
// binds and the seal's parameters.
func simSealingKey(chipKey crypto.Signer, name, measurement string, params []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(chipKey)
	if err != nil {
		return nil, fmt.Errorf("%s: sealing key: %w", name, err)
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte("teesign simulated sealing key v1"), der, []byte(name), []byte(measurement), params} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return h.Sum(nil), nil
}
