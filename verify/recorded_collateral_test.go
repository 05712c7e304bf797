package verify_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tdxtest "github.com/google/go-tdx-guest/testing"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/teesign/teesign/verify"
)

// Recorded Intel PCS responses (go-tdx-guest's samples, with their real
// issuer-chain headers) replayed by a local server standing in for a PCCS,
// for go-tdx-guest's real v4 quote, at a time the collateral was current.
func TestRecordedPCSResponses(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		recordedPCS(t, tamper)
	}
}

func recordedPCS(t *testing.T, tamper bool) {
	var requests []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests = append(requests, r.URL.RequestURI())
		u := verify.IntelPCSURL + r.URL.RequestURI()
		if r.URL.Path == "/sgx/certification/v4/rootcacrl" {
			u = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
		}
		resp, ok := tdxtest.TestGetter.Responses[u]
		if !ok {
			http.NotFound(w, r)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		body := resp.Body
		if tamper && strings.Contains(u, "/tcb?") {
			body = []byte(strings.Replace(string(body), `"tcbEvaluationDataNumber":15`, `"tcbEvaluationDataNumber":16`, 1))
		}
		w.Write(body)
	}))
	defer ts.Close()
	when := time.Date(2023, 7, 1, 0, 0, 0, 0, time.UTC) // inside the samples' nextUpdate
	res, err := verify.Verify(context.Background(), []byte(hex.EncodeToString(tdxdata.RawQuote)), []byte("m"), []byte("s"),
		verify.Options{Now: when, Collateral: &verify.CollateralSource{PCCSURL: ts.URL, Retries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	st := status(res)
	if st["quote_signature"] != "pass" || st["cert_chain"] != "pass" {
		t.Fatalf("%+v", res.Checks)
	}
	if len(requests) < 4 || !strings.Contains(strings.Join(requests, " "), "/tdx/certification/v4/tcb?fmspc=") {
		t.Fatalf("collateral was not fetched through the PCCS URL: %v", requests)
	}
	// The recorded TCB info is genuine (signed under Intel's root, checked
	// here) but does not cover this quote's TCB (NOTES: the library's
	// samples do not match each other), so the verdict is a named failure
	// that comes after the collateral's signatures were checked.
	want := "no matching TCB level"
	if tamper { // an edited TCB info no longer carries Intel's signature
		want = "tcbInfo response verification failed"
	}
	if st["tcb_status"] != "fail" || !strings.Contains(res.Checks[2].Reason, want) {
		t.Fatalf("tamper=%v: tcb_status: %+v", tamper, res.Checks[2])
	}
}
