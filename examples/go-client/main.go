// Command go-client signs a message through teesign's signing server and
// verifies it with the public verify package: the quote's chain, the
// workload against a policy, the key binding and the signature.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

func main() {
	server := flag.String("server", "http://172.17.0.1:49153", "signing server")
	keyType := flag.String("key-type", "ed25519", "secp256k1 or ed25519")
	quoteFile := flag.String("quote", "", "docker_attestation_<alg>.txt")
	trustRoot := flag.String("trust-root", "", "extra trusted root PEM (a simulated TEE's sim-root.pem)")
	message := flag.String("message", "My Secret Message", "message to sign")
	policyFile := flag.String("policy", "", "policy pinning the workload (teesign policy from-quote writes one)")
	flag.Parse()

	body, _ := json.Marshal(map[string]string{"key_type": *keyType, "payload": *message})
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(*server+"/sign", "application/json", bytes.NewReader(body))
	check(err)
	var signed struct{ Signature string }
	check(json.NewDecoder(resp.Body).Decode(&signed))
	resp.Body.Close()
	sig, err := base64.StdEncoding.DecodeString(signed.Signature)
	check(err)
	fmt.Println("signature:", signed.Signature)

	quote, err := os.ReadFile(*quoteFile)
	check(err)
	opts := verify.Options{KeyType: *keyType, Offline: true}
	if *policyFile != "" {
		opts.Policy, err = validate.Load(*policyFile)
		check(err)
	}
	if *trustRoot != "" {
		pemBytes, err := os.ReadFile(*trustRoot)
		check(err)
		opts.TrustedCerts, err = verify.ParseCerts(pemBytes)
		check(err)
	}
	res, err := verify.Verify(context.Background(), quote, []byte(*message), sig, opts)
	check(err)
	for _, c := range res.Checks {
		fmt.Printf("%s: %s %s\n", c.Name, c.Status, c.Reason)
	}
	if !res.Valid {
		fmt.Println("INVALID")
		os.Exit(1)
	}
	fmt.Println("OK")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-client:", err)
		os.Exit(1)
	}
}
