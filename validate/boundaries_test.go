package validate_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/teesign/teesign/validate"
)

// Any two of a TEE's workload fields pin the workload together, as each
// does alone.
func TestPinsWorkloadWithSeveralFields(t *testing.T) {
	fields := map[string][]string{
		validate.TDX:    {"mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_config_id", "mr_owner", "mr_owner_config"},
		validate.SEVSNP: {"measurement", "host_data", "image_id", "id_key_digest", "author_key_digest"},
	}
	size := map[string]int{"host_data": 32, "image_id": 16, "id_key_digest": 48, "author_key_digest": 48}
	val := func(f string) string {
		n := 48
		if s, ok := size[f]; ok {
			n = s
		}
		return `["` + strings.Repeat("ab", n) + `"]`
	}
	for tee, fs := range fields {
		for i, a := range fs {
			for _, b := range fs[i+1:] {
				doc := `{"` + tee + `": {"` + a + `": ` + val(a) + `, "` + b + `": ` + val(b) + `}}`
				p, err := validate.Parse([]byte(doc))
				if err != nil {
					t.Fatalf("%s: %v", doc, err)
				}
				if !p.PinsWorkload(tee) {
					t.Errorf("%s %s and %s together do not pin the workload", tee, a, b)
				}
			}
		}
	}
}

// Limits of what a policy may say: VMPLs 0 to 3; min_guest_svn with or
// without a guest_svn list, equal to its highest entry; length errors say
// how many hex digits a field takes and quote at most 40 of the value.
func TestPolicyLimits(t *testing.T) {
	for doc, want := range map[string]string{
		"sev-snp:\n  vmpl: [3]\n":                                       "",
		"sev-snp:\n  vmpl: [4]\n":                                       "4 is not a VMPL",
		"sev-snp:\n  min_guest_svn: 3\n":                                "",
		"sev-snp:\n  guest_svn: [3]\n  min_guest_svn: 3\n":              "",
		"sev-snp:\n  guest_svn: [2]\n  min_guest_svn: 3\n":              "can match nothing",
		"tdx:\n  mr_td: [\"" + strings.Repeat("ab", 20) + "\"]\n":       "mr_td: " + strings.Repeat("ab", 20) + " is 20 bytes, want 48 (96 hex digits)",
		"tdx:\n  mr_td: [\"" + strings.Repeat("ab", 21) + "\"]\n":       "mr_td: " + strings.Repeat("ab", 20) + "… is 21 bytes",
		"sev-snp:\n  image_id: [\"" + strings.Repeat("ab", 8) + "\"]\n": "want 16 (32 hex digits)",
	} {
		_, err := validate.Parse([]byte(doc))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}

// A TCB SVN equal to the minimum in every component passes; the DEBUG
// attribute is read from the first byte of TD_ATTRIBUTES only, however many
// bytes are given.
func TestTDXAttributesAndEqualSVNs(t *testing.T) {
	p := &validate.Policy{TDX: &validate.TDXPolicy{MinTeeTCBSVN: []byte{7, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}
	q := tdxQuote()
	q.TeeTCBSVN = []byte{7, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := p.CheckTDX(q); err != nil {
		t.Fatalf("TCB SVN equal to the minimum: %v", err)
	}
	q.TDAttributes = append(append([]byte(nil), q.TDAttributes...), 0xff)
	if err := p.CheckTDX(q); err != nil {
		t.Fatalf("a ninth TD_ATTRIBUTES byte is not an attribute: %v", err)
	}
	q.TDAttributes[0] |= 1
	if got := rules(p.CheckTDX(q)); !slices.Contains(got, "debug") {
		t.Fatalf("debug bit set: %v", got)
	}
}
