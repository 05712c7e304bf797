// Command client runs inside a FROM-scratch container in teesign's
// end-to-end test: it reads the public keys and quotes its compose file
// mounts, asks the signing server for signatures with both key types,
// checks them against the mounted public keys, and prints them as JSON
// lines. With -expect-refused it succeeds only if the server refuses it.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/teesign/teesign/internal/keys"
)

func main() {
	server := flag.String("server", os.Getenv("SIGNER_URL"), "signing server base URL")
	data := flag.String("data", "/app/data", "folder holding the mounted files")
	payload := flag.String("payload", "hello from a container", "payload to sign")
	refused := flag.Bool("expect-refused", false, "succeed only if the server refuses the request")
	flag.Parse()
	client := &http.Client{Timeout: 5 * time.Second}
	if *refused {
		resp, err := client.Post(*server+"/sign", "application/json", bytes.NewReader([]byte(`{"payload":"x"}`)))
		if err != nil {
			fmt.Printf(`{"refused":true,"how":%q}`+"\n", err.Error())
			return
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden {
			fmt.Println(`{"refused":true,"how":"HTTP 403"}`)
			return
		}
		fail("the server answered %s to a disallowed network", resp.Status)
	}
	for _, alg := range keys.Algs() {
		pemBytes, err := os.ReadFile(fmt.Sprintf("%s/pubkey_%s.pem", *data, alg))
		if err != nil {
			fail("%v", err)
		}
		pub, err := keys.ParsePublicKeyPEM(pemBytes)
		if err != nil {
			fail("%v", err)
		}
		quote, err := os.ReadFile(fmt.Sprintf("%s/quote_%s.txt", *data, alg))
		if err != nil || len(quote) < 100 {
			fail("quote for %s: %v", alg, err)
		}
		body, _ := json.Marshal(map[string]string{"key_type": string(alg), "payload": *payload})
		resp, err := client.Post(*server+"/sign", "application/json", bytes.NewReader(body))
		if err != nil {
			fail("sign %s: %v", alg, err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fail("sign %s: %s %s", alg, resp.Status, out)
		}
		var r struct{ Signature, KeyType string }
		if err := json.Unmarshal(out, &r); err != nil {
			fail("sign %s: %v", alg, err)
		}
		sig, err := base64.StdEncoding.DecodeString(r.Signature)
		if err != nil {
			fail("%v", err)
		}
		if err := pub.Verify([]byte(*payload), sig); err != nil {
			fail("%s signature does not verify with the mounted public key: %v", alg, err)
		}
		line, _ := json.Marshal(map[string]any{"key_type": alg, "payload": *payload, "signature": r.Signature, "verified_with_mounted_key": true})
		fmt.Println(string(line))
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "client: "+format+"\n", a...)
	os.Exit(1)
}
