package verify_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

// Verify a message signed with the published SecretVM sample key against
// its real TDX quote, offline, with Intel's pinned root and a policy that
// pins the workload (the sample's MRTD and RTMR3).
func Example() {
	quoteText, _ := os.ReadFile("../testdata/secretvm-sample/quote.txt")
	// In real use the signature comes from the VM's signing server; the
	// sample's private key was published, so we can make one here.
	privPEM, _ := os.ReadFile("../testdata/secretvm-sample/private_key.pem")
	block, _ := pem.Decode(privPEM)
	key, _ := x509.ParsePKCS8PrivateKey(block.Bytes)
	msg := []byte("My Secret Message")
	sig := ed25519.Sign(key.(ed25519.PrivateKey), msg)

	policy, err := validate.Parse([]byte(`
tdx:
  mr_td: ["1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e"]
  rtmr3: ["aff11dd6163203574cdf6841166e6d769e27897fc55ec63c87a8f4ae200781e7dc434318114fcabda19ce1af2ef0741a"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := verify.Verify(context.Background(), quoteText, msg, sig, verify.Options{KeyType: "ed25519", Offline: true, Policy: policy})
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
