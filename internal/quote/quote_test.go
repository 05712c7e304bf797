package quote_test

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/testutil"
)

func TestSampleFields(t *testing.T) {
	text := testutil.SampleFile(t, "quote.txt")
	raw, kind, err := quote.Decode(text)
	if err != nil || kind != quote.TDX || len(raw) != 5006 {
		t.Fatalf("%v %v %d", kind, err, len(raw))
	}
	_, f, err := quote.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The values the sample's README lists.
	want := map[string]any{
		"version":       4,
		"tee_type":      "00000081",
		"tee_tcb_svn":   "07010300000000000000000000000000",
		"mr_seam":       "49b66faa451d19ebbdbe89371b8daf2b65aa3984ec90110343e9e2eec116af08850fa20e3b1aa9a874d77a65380ee7e6",
		"td_attributes": "0000001000000000",
		"xfam":          "e702060000000000",
		"mr_td":         "1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e",
		"rtmr0":         "2709012eccc10afb618d90f4e2849de97ede129e27b3f53b4465f71852af9e1a52583e931f340ce9ebfa06be3c3feb48",
		"rtmr1":         "c89b74b27e87c0059a4ce27404f712d2a7035ac8f341b543e0168837d38f992151fce03dbf907ab4a646ca38bd73a598",
		"rtmr2":         "04cfd4b5b4b03ccfff8daa8729dafaa23a4493f73b1100abafd1ad52cb03f3c6bbf7b8ee250ac1a4b47b98fec88df6cc",
		"rtmr3":         "aff11dd6163203574cdf6841166e6d769e27897fc55ec63c87a8f4ae200781e7dc434318114fcabda19ce1af2ef0741a",
		"report_data":   "cfd9089479ff8dfa4819bab866c06e173cb2bbce03bdcc0b62c114af334508dc" + strings.Repeat("0", 64),
		"debug":         false,
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %v, want %v", k, f[k], v)
		}
	}
	// The same quote as base64 with whitespace, and upper-case hex.
	b64 := base64.StdEncoding.EncodeToString(raw)
	for _, in := range []string{b64[:100] + "\n  " + b64[100:], strings.ToUpper(hex.EncodeToString(raw))} {
		got, k, err := quote.Decode([]byte(in))
		if err != nil || k != quote.TDX || string(got) != string(raw) {
			t.Fatalf("alternative encoding: %v", err)
		}
	}
	if string(quote.Encode(quote.TDX, raw)) != strings.TrimSpace(string(text))+"\n" {
		t.Fatal("Encode does not reproduce the file encoding")
	}
	for _, bad := range []string{"", "zz", hex.EncodeToString(raw[:40]), "AAAA"} {
		if _, _, err := quote.Decode([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzQuoteDecode(f *testing.F) {
	f.Add(testutil.SampleFile(f, "quote.txt"))
	f.Add([]byte("0400020081000000"))
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, quote.SNPReportSize))))
	f.Fuzz(func(t *testing.T, text []byte) {
		raw, _, err := quote.Decode(text)
		if err != nil {
			return
		}
		quote.Parse(raw)
		quote.ReportData(raw)
	})
}

// go-tdx-guest's real v4 and v5 quotes decode, with the same field names.
func TestLibrarySampleQuotes(t *testing.T) {
	for name, raw := range map[string][]byte{"v4": tdxdata.RawQuote, "v5": tdxdata.RawQuoteV5} {
		for _, text := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)} {
			got, kind, err := quote.Decode([]byte(text))
			if err != nil || kind != quote.TDX || string(got) != string(raw) {
				t.Fatalf("%s: %v %v", name, kind, err)
			}
		}
		_, f, err := quote.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := map[string]int{"v4": 4, "v5": 5}[name]
		if f["version"] != want || len(f["mr_td"].(string)) != 96 || len(f["rtmr3"].(string)) != 96 || len(f["report_data"].(string)) != 128 {
			t.Fatalf("%s fields: %v", name, f)
		}
		rd, err := quote.ReportData(raw)
		if err != nil || hex.EncodeToString(rd) != f["report_data"] {
			t.Fatalf("%s: ReportData %x, fields %v (%v)", name, rd, f["report_data"], err)
		}
	}
}
