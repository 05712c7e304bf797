// Command refserver is the benchmarks' reference ceiling for POST /sign: the
// smallest net/http and encoding/json server that signs what teesign's
// signing server signs, with the same keys code and no checks beyond
// decoding. teesign's /sign is measured as a fraction of it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"

	"github.com/teesign/teesign/internal/keys"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:49210", "address")
	flag.Parse()
	ks := map[string]*keys.PrivateKey{}
	for _, alg := range keys.Algs() {
		ks[string(alg)], _ = keys.Generate(alg)
	}
	http.HandleFunc("POST /sign", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			KeyType string `json:"key_type"`
			Payload string `json:"payload"`
		}
		if json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req) != nil || ks[req.KeyType] == nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"signature": ks[req.KeyType].Sign([]byte(req.Payload)), "key_type": req.KeyType})
	})
	fmt.Println("refserver listening on", *addr)
	fmt.Println(http.ListenAndServe(*addr, nil))
}
