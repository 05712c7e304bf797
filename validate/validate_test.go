package validate_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/teesign/teesign/validate"
)

func TestParseStrict(t *testing.T) {
	p, err := validate.Parse([]byte("tdx:\n  mr_td: [\"aa\", \"bb\"]\n  tcb_svn: [\"07\"]\nsev_snp:\n  measurement: [\"cc\"]\nallow_debug: true\naccepted_tcb_status: [UpToDate, OutOfDate]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tdx["mr_td"]) != 2 || !p.AllowDebug || !p.TCBAccepted("OutOfDate") || p.TCBAccepted("Revoked") {
		t.Fatalf("%+v", p)
	}
	if _, err := validate.Parse([]byte(`{"tdx": {"rtmr3": ["00"]}}`)); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	for doc, want := range map[string]string{
		"tdx:\n  mr_tdd: [aa]\n":                "unknown field",
		"tdx:\n  mr_td: [AA]\n":                 "lowercase hex",
		"tdx:\n  mr_td: []\n":                   "empty list",
		"tdxx: {}\n":                            "unknown field",
		"tdx:\n  mr_td: [aa]\n  mr_td: [bb]\n":  "already set",
		"sev_snp:\n  measurement: [\"0x12\"]\n": "lowercase hex",
	} {
		if _, err := validate.Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
	if !(&validate.Policy{}).TCBAccepted("UpToDate") || (&validate.Policy{}).TCBAccepted("OutOfDate") {
		t.Fatal("default accepted TCB status is not exactly UpToDate")
	}
}

func TestCheckNamesFieldFoundAndAllowed(t *testing.T) {
	p := &validate.Policy{Tdx: map[string][]string{"mr_td": {"aa", "bb"}, "tcb_svn": {"07"}}}
	fields := map[string]any{"mr_td": "cc", "tee_tcb_svn": "07", "debug": false}
	err := p.Check("tdx", fields)
	if err == nil || !strings.Contains(err.Error(), "mr_td is cc, allowed: aa, bb") {
		t.Fatalf("%v", err)
	}
	fields["mr_td"] = "bb"
	if err := p.Check("tdx", fields); err != nil {
		t.Fatal(err)
	}
	fields["debug"] = true
	if err := p.Check("tdx", fields); err == nil || !strings.Contains(err.Error(), "debug") {
		t.Fatalf("debug quote accepted: %v", err)
	}
	p.AllowDebug = true
	if err := p.Check("tdx", fields); err != nil {
		t.Fatal(err)
	}
	// SEV-SNP uses its own section.
	if err := (&validate.Policy{SevSnp: map[string][]string{"measurement": {"aa"}}}).Check("sev-snp", map[string]any{"measurement": "ab"}); err == nil {
		t.Fatal("SEV-SNP mismatch accepted")
	}
}

func TestComposeRTMR3(t *testing.T) {
	if hex.EncodeToString(validate.ComposeRTMR3()) != strings.Repeat("00", 48) {
		t.Fatal("RTMR3 of no compose file is not zero")
	}
	// One extension by hand: SHA-384(0^48 ‖ SHA-256("a") ‖ 0^16).
	// Computed with Python's hashlib.
	if got := hex.EncodeToString(validate.ComposeRTMR3([]byte("a"))); got != "b1c1189059200a91867f068ef66fb5dff93eb38498b174c5e07f4146629765a21289a49dd76830d3eb847bcc0ee9b48b" {
		t.Fatalf("RTMR3 of one file: %s", got)
	}
	a := validate.ComposeRTMR3([]byte("a"), []byte("b"))
	b := validate.ComposeRTMR3([]byte("b"), []byte("a"))
	if hex.EncodeToString(a) == hex.EncodeToString(b) {
		t.Fatal("order of compose files does not matter")
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("tdx:\n  mr_td: [aa]\nallow_debug: false\n"))
	f.Add([]byte(`{"sev_snp":{"measurement":["00"]},"accepted_tcb_status":["UpToDate"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := validate.Parse(data)
		if err != nil {
			return
		}
		p.Check("tdx", map[string]any{"mr_td": "aa", "debug": true})
		p.Check("sev-snp", map[string]any{"measurement": "aa"})
	})
}
