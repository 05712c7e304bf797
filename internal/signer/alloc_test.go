package signer_test

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func BenchmarkSignHandler(b *testing.B) {
	for _, alg := range []string{"secp256k1", "ed25519"} {
		b.Run(alg, func(b *testing.B) {
			ts, _ := newServer(b, "0.0.0.0/0")
			h := ts.Handler
			body := `{"key_type":"` + alg + `","payload":"benchmark payload 0123456789"}`
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := httptest.NewRequest("POST", "/sign", strings.NewReader(body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
