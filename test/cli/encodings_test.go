package cli_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/testutil"
)

// Every real quote in the test data, written as binary, hex, 0x-hex,
// base64, URL-safe unpadded base64 and line-wrapped base64, gives
// byte-identical `quote inspect` output.
func TestInspectIsTheSameInEveryEncoding(t *testing.T) {
	ev := testutil.EvidenceDir()
	files := []string{
		filepath.Join(testutil.SampleDir(), "quote.txt"),
		filepath.Join(ev, "dcap-qvl_tdx_quote.bin"), filepath.Join(ev, "dcap-qvl_tdx-quote.0x.hex"),
		filepath.Join(ev, "go-tdx-guest_quote_v5_sample.bin"), filepath.Join(ev, "virtee-sev_report_milan.hex"),
		filepath.Join(ev, "trustee_snp_vlek_report.bin"),
	}
	dir := t.TempDir()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := quote.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b64 := base64.StdEncoding.EncodeToString(raw)
		var wrapped strings.Builder
		for i := 0; i < len(b64); i += 64 {
			wrapped.WriteString(b64[i:min(i+64, len(b64))] + "\n")
		}
		forms := map[string][]byte{
			"binary": raw, "hex": []byte(hex.EncodeToString(raw) + "\n"), "0x-hex": []byte("0x" + strings.ToUpper(hex.EncodeToString(raw))),
			"base64": []byte(b64), "url-base64": []byte(base64.RawURLEncoding.EncodeToString(raw)), "wrapped-base64": []byte(wrapped.String()),
		}
		var want []byte
		for name, form := range forms {
			p := filepath.Join(dir, filepath.Base(f)+"."+name)
			os.WriteFile(p, form, 0o644)
			out := testutil.Run(t, bin, "quote", "inspect", p)
			if want == nil {
				want = out
			} else if !bytes.Equal(out, want) {
				t.Errorf("%s as %s: inspect differs", filepath.Base(f), name)
			}
		}
	}
	// The v5 quote's TDX 1.5 fields are printed.
	out := testutil.Run(t, bin, "quote", "inspect", filepath.Join(ev, "go-tdx-guest_quote_v5_sample.bin"))
	if !bytes.Contains(out, []byte(`"mr_servicetd"`)) || !bytes.Contains(out, []byte(`"tee_tcb_svn2"`)) {
		t.Fatalf("v5 fields: %s", out)
	}
	// An Azure HCL report: its SEV-SNP report is read, with a note.
	out = testutil.Run(t, bin, "quote", "inspect", filepath.Join(ev, "trustee_azure_snp_hcl_report.bin"))
	if !bytes.Contains(out, []byte(`"tee": "sev-snp"`)) || !bytes.Contains(out, []byte("paravisor owns report_data")) {
		t.Fatalf("Azure HCL report: %s", out)
	}
	// An SGX quote is refused by name.
	out, err := testutil.RunErr(bin, "quote", "inspect", filepath.Join(ev, "dcap-qvl_sgx_quote.bin"))
	if err == nil || !bytes.Contains(out, []byte("SGX")) {
		t.Fatalf("SGX quote: %v %s", err, out)
	}
}
