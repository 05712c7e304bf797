package verify_test

import (
	"context"
	"encoding/hex"
	"testing"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/teesign/teesign/verify"
)

// go-tdx-guest's real Intel v4 and v5 quotes pass the hardware checks
// against the pinned Intel root; their report_data binds no teesign key.
func TestLibraryRealQuotes(t *testing.T) {
	for name, raw := range map[string][]byte{"v4": tdxdata.RawQuote, "v5": tdxdata.RawQuoteV5} {
		res, err := verify.Verify(context.Background(), []byte(hex.EncodeToString(raw)), []byte("m"), []byte("s"), verify.Options{Offline: true})
		if err != nil {
			t.Fatal(err)
		}
		st := status(res)
		if st["quote_signature"] != "pass" || st["cert_chain"] != "pass" || st["key_binding"] != "fail" || res.Valid {
			t.Fatalf("%s: %+v", name, res.Checks)
		}
		// One flipped byte in the body breaks the quote signature.
		bad := append([]byte(nil), raw...)
		bad[0x30+200] ^= 1
		res, _ = verify.Verify(context.Background(), []byte(hex.EncodeToString(bad)), []byte("m"), []byte("s"), verify.Options{Offline: true})
		if status(res)["quote_signature"] != "fail" {
			t.Fatalf("%s tampered: %+v", name, res.Checks)
		}
	}
}
