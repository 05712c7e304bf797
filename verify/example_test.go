package verify_test

import (
	"context"
	"fmt"
	"os"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/verify"
)

// Verify a message signed with the published SecretVM sample key against
// its real TDX quote, offline, with Intel's root.
func Example() {
	quoteText, _ := os.ReadFile("../testdata/secretvm-sample/quote.txt")
	privPEM, _ := os.ReadFile("../testdata/secretvm-sample/private_key.pem")
	k, _ := keys.ParsePrivateKeyPEM(privPEM) // in real use, the signature comes from the VM
	msg := []byte("My Secret Message")
	res, err := verify.Verify(context.Background(), quoteText, msg, k.Sign(msg), verify.Options{KeyType: "ed25519", Offline: true})
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
