package quote_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/testutil"
)

// tdxHeader is a TDX quote header of the given version and TEE type,
// padded to n bytes.
func tdxHeader(version uint16, tee uint32, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint16(b, version)
	binary.LittleEndian.PutUint32(b[4:], tee)
	return b
}

func snpHeader(version uint32, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b, version)
	return b
}

// Detect accepts exactly the sizes and versions the formats allow: a TDX
// quote of at least its header and v4 body (632 bytes), version 4 or 5,
// TEE type 0x81; a SEV-SNP report of exactly 1184 bytes, version 2 to 5.
func TestDetectAcceptsExactlyTheFormats(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
		want quote.Kind
	}{
		{"TDX v4 at the minimum size", tdxHeader(4, 0x81, 632), quote.TDX},
		{"TDX v5", tdxHeader(5, 0x81, 700), quote.TDX},
		{"TDX one byte short", tdxHeader(4, 0x81, 631), ""},
		{"TDX v3", tdxHeader(3, 0x81, 700), ""},
		{"TDX v6", tdxHeader(6, 0x81, 700), ""},
		{"SGX TEE type", tdxHeader(4, 0x00, 700), ""},
		{"SEV-SNP v2", snpHeader(2, 1184), quote.SEVSNP},
		{"SEV-SNP v5", snpHeader(5, 1184), quote.SEVSNP},
		{"SEV-SNP v1", snpHeader(1, 1184), ""},
		{"SEV-SNP v6", snpHeader(6, 1184), ""},
		{"SEV-SNP one byte short", snpHeader(2, 1183), ""},
		{"SEV-SNP one byte long", snpHeader(2, 1185), ""},
	}
	for _, c := range cases {
		got, err := quote.Detect(c.raw)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
}

// Decode refuses text longer than any encoding of the largest quote, and
// counts hex and base64 characters without whitespace.
func TestDecodeSizeLimits(t *testing.T) {
	tooLong := func(err error) bool { return err != nil && strings.Contains(err.Error(), "limit") }
	// 4×MaxQuoteSize bytes holding 2×MaxQuoteSize characters besides
	// whitespace: at both limits, not over.
	atLimits := []byte(strings.Repeat("0 ", 2*quote.MaxQuoteSize))
	if _, _, err := quote.Decode(atLimits); tooLong(err) {
		t.Errorf("at the limits: refused for its size: %v", err)
	}
	if _, _, err := quote.Decode(append(atLimits, ' ')); !tooLong(err) {
		t.Errorf("one byte over 4×MaxQuoteSize: %v", err)
	}
	if _, _, err := quote.Decode(bytes.Repeat([]byte("0"), 2*quote.MaxQuoteSize+1)); !tooLong(err) {
		t.Errorf("one character over 2×MaxQuoteSize: %v", err)
	}
}

// An Azure HCL report yields the SEV-SNP report inside it, with a note;
// a truncated one is not taken for one.
func TestAzureHCLReport(t *testing.T) {
	hcl := testutil.Evidence(t, "trustee_azure_snp_hcl_report.bin")
	whole := hcl[:32+1184]
	raw, k, err := quote.Decode(whole)
	if err != nil || k != quote.SEVSNP || !bytes.Equal(raw, hcl[32:32+1184]) || quote.Note(whole) == "" {
		t.Fatalf("HCL report of exactly its header and report: %v %s", err, k)
	}
	if _, _, err := quote.Decode(hcl[:32+1183]); err == nil {
		t.Error("a truncated HCL report was decoded")
	}
	if quote.Note(hcl[:32+1183]) != "" || quote.Note(snpHeader(2, 1184)) != "" {
		t.Error("a note for what is not an HCL report")
	}
	bad := append([]byte(nil), whole...)
	copy(bad, "HCLB")
	if quote.Note(bad) != "" {
		t.Error("a note for another magic")
	}
}

// An SGX quote is named as such in the error, from its 8-byte header.
func TestSGXQuoteIsNamed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"dcap-qvl's SGX quote": testutil.Evidence(t, "dcap-qvl_sgx_quote.bin"),
		"an 8-byte SGX header": {3, 0, 0, 0, 0, 0, 0, 0},
	} {
		_, _, err := quote.Decode(raw)
		if err == nil || !strings.Contains(err.Error(), "SGX (version 3)") {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, raw := range map[string][]byte{
		"7 bytes":              {3, 0, 0, 0, 0, 0, 0},
		"version 4 header":     {4, 0, 0, 0, 0, 0, 0, 0},
		"TEE type 0x81":        {3, 0, 0, 0, 0x81, 0, 0, 0},
		"TEE type in byte 7":   {3, 0, 0, 0, 0, 0, 0, 1},
		"version in high byte": {3, 1, 0, 0, 0, 0, 0, 0},
	} {
		if _, _, err := quote.Decode(raw); err == nil || strings.Contains(err.Error(), "SGX") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TDXDebug reads bit 0 of TD_ATTRIBUTES only.
func TestTDXDebugBit(t *testing.T) {
	for attrs, want := range map[string]bool{"": false, "\x00": false, "\x01": true, "\x03": true, "\x02": false, "\x00\x01": false} {
		if quote.TDXDebug([]byte(attrs)) != want {
			t.Errorf("TD_ATTRIBUTES % x: debug %v", attrs, !want)
		}
	}
}

// A v5 quote with a TDX 1.5 body reports MR_SERVICETD and TEE_TCB_SVN2; a
// v4 quote has neither.
func TestV5FieldsOnlyInV5Quotes(t *testing.T) {
	_, f5, err := quote.Parse(testutil.Evidence(t, "go-tdx-guest_quote_v5_sample.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f5["mr_servicetd"]; !ok {
		t.Errorf("v5: no mr_servicetd: %v", f5)
	}
	if _, ok := f5["tee_tcb_svn2"]; !ok {
		t.Errorf("v5: no tee_tcb_svn2")
	}
	raw, _, err := quote.Decode(testutil.SampleFile(t, "quote.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, f4, err := quote.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f4["mr_servicetd"]; ok {
		t.Error("v4: mr_servicetd reported")
	}
}
