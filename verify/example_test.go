package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/teesign/teesign/verify"
)

// Verify a message signed with the published SecretVM sample key against
// its real TDX quote, offline, with Intel's pinned root.
func Example() {
	quoteText, _ := os.ReadFile("../testdata/secretvm-sample/quote.txt")
	// In real use the signature comes from the VM's signing server; the
	// sample's private key was published, so we can make one here.
	privPEM, _ := os.ReadFile("../testdata/secretvm-sample/private_key.pem")
	block, _ := pem.Decode(privPEM)
	key, _ := x509.ParsePKCS8PrivateKey(block.Bytes)
	msg := []byte("My Secret Message")
	sig := ed25519.Sign(key.(ed25519.PrivateKey), msg)

	res, err := verify.Verify(context.Background(), quoteText, msg, sig, verify.Options{KeyType: "ed25519", Offline: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("valid:", res.Valid, "tee:", res.TEE)
	for _, c := range res.Checks {
		fmt.Println(c.Name, c.Status)
	}
	// Output:
	// valid: true tee: tdx
	// quote_signature pass
	// cert_chain pass
	// tcb_status unchecked
	// policy pass
	// key_binding pass
	// signature pass
}
