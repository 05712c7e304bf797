package validate_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/teesign/teesign/validate"
)

var (
	h48 = strings.Repeat("ab", 48)
	h16 = strings.Repeat("cd", 16)
)

func TestParseTypedPolicy(t *testing.T) {
	p, err := validate.Parse([]byte(`
tdx:
  mr_td: ["` + h48 + `", "` + strings.Repeat("00", 48) + `"]
  rtmr3: ["` + h48 + `"]
  min_tee_tcb_svn: "07010300000000000000000000000000"
  relax: [sept_ve_disable]
sev-snp:
  measurement: ["` + h48 + `"]
  guest_svn: [1, 2]
  min_guest_svn: 1
  vmpl: [0]
  min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}
  relax: [smt]
accepted_tcb_status: [UpToDate, OutOfDate]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.TDX.MRTD) != 2 || len(p.TDX.MRTD[0]) != 48 || p.SEVSNP.GuestSVN[1] != 2 || *p.SEVSNP.MinGuestSVN != 1 || p.SEVSNP.MinReportedTCB.Microcode != 115 {
		t.Fatalf("%+v %+v", p.TDX, p.SEVSNP)
	}
	if !p.TCBAccepted("OutOfDate") || p.TCBAccepted("SWHardeningNeeded") || p.TCBAccepted("Revoked") {
		t.Fatal("accepted TCB statuses")
	}
	if !(&validate.Policy{}).TCBAccepted("UpToDate") || (&validate.Policy{}).TCBAccepted("OutOfDate") {
		t.Fatal("default accepted TCB status is not exactly UpToDate")
	}
	if _, err := validate.Parse([]byte(`{"tdx": {"rtmr3": ["` + h48 + `"]}}`)); err != nil {
		t.Fatalf("JSON: %v", err)
	}
}

func TestParseRejectsWhatCannotMeanOneThing(t *testing.T) {
	for name, c := range map[string]struct{ doc, want string }{
		"unknown field":        {"tdx:\n  mr_tdd: [\"" + h48 + "\"]\n", "unknown field tdx.mr_tdd"},
		"unknown section":      {"tdxx: {}\n", "unknown field tdxx"},
		"old SEV-SNP spelling": {"sev_snp:\n  measurement: [\"" + h48 + "\"]\n", "unknown field sev_snp"},
		"old allow_debug":      {"allow_debug: true\n", "unknown field allow_debug"},
		"case-folded key":      {"tdx:\n  MR_TD: [\"" + h48 + "\"]\n", "unknown field tdx.MR_TD"},
		"upper-case hex":       {"tdx:\n  mr_td: [\"" + strings.ToUpper(h48) + "\"]\n", "lowercase hex"},
		"0x prefix":            {"sev-snp:\n  measurement: [\"0x12\"]\n", "lowercase hex"},
		"short value":          {"tdx:\n  mr_td: [\"aa\"]\n", "mr_td: aa is 1 bytes, want 48"},
		"empty list":           {"tdx:\n  mr_td: []\n", "empty list"},
		"duplicate key":        {"tdx:\n  mr_td: [\"" + h48 + "\"]\n  mr_td: [\"" + h48 + "\"]\n", "already set"},
		"SVN as hex string":    {"sev-snp:\n  guest_svn: [\"0a\"]\n", "guest_svn: [3]"},
		"minimum as string":    {"sev-snp:\n  min_guest_svn: \"2\"\n", "min_guest_svn: 3"},
		"unknown rule":         {"tdx:\n  relax: [debugging]\n", "unknown rule \"debugging\""},
		"rule of other TEE":    {"tdx:\n  relax: [smt]\n", "unknown rule \"smt\""},
		"revoked accepted":     {"accepted_tcb_status: [Revoked]\n", "Revoked cannot be accepted"},
		"unknown status":       {"accepted_tcb_status: [Fine]\n", "unknown status"},
		"no VMPL 4":            {"sev-snp:\n  vmpl: [4]\n", "not a VMPL"},
		"SVNs under minimum":   {"sev-snp:\n  guest_svn: [1]\n  min_guest_svn: 2\n", "can match nothing"},
		"TCB SVNs under min":   {"tdx:\n  tee_tcb_svn: [\"" + strings.Repeat("01", 16) + "\"]\n  min_tee_tcb_svn: \"" + strings.Repeat("02", 16) + "\"\n", "can match nothing"},
		"short TCB minimum":    {"tdx:\n  min_tee_tcb_svn: \"07\"\n", "want 16"},
	} {
		_, err := validate.Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, c.want)
		}
	}
}

func rules(err error) []string {
	var verr *validate.Error
	if errors.As(err, &verr) {
		return verr.Rules()
	}
	return nil
}

// tdxQuote is a TDX quote that passes every hygiene rule.
func tdxQuote() *validate.TDXQuote {
	b := func(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	return &validate.TDXQuote{
		TeeTCBSVN: []byte{7, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, MRSeam: b(48, 1), MRSignerSeam: b(48, 0), SeamAttributes: b(8, 0),
		TDAttributes: []byte{0, 0, 0, 0x10, 0, 0, 0, 0}, XFAM: b(8, 0), MRTD: b(48, 0xab), MRConfigID: b(48, 0), MROwner: b(48, 0),
		MROwnerConfig: b(48, 0), RTMR: [4][]byte{b(48, 0), b(48, 1), b(48, 2), b(48, 3)},
	}
}

func snpReport() *validate.SNPReport {
	tcb := uint64(115)<<56 | uint64(8)<<48 | 3
	return &validate.SNPReport{
		Version: 3, GuestSVN: 2, GuestPolicy: 0x30000, ReportedTCB: tcb, CurrentTCB: tcb, CommittedTCB: tcb,
		Measurement: bytes.Repeat([]byte{0xab}, 48), HostData: make([]byte, 32),
	}
}

func TestCheckNamesEachViolation(t *testing.T) {
	p, err := validate.Parse([]byte("tdx:\n  mr_td: [\"" + h48 + "\"]\n  rtmr3: [\"" + strings.Repeat("00", 48) + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	q := tdxQuote()
	err = p.CheckTDX(q)
	if got := rules(err); !slices.Equal(got, []string{"rtmr3"}) {
		t.Fatalf("violations %v (%v), want [rtmr3]", got, err)
	}
	if !strings.Contains(err.Error(), "allowed: "+strings.Repeat("00", 48)) {
		t.Fatalf("the reason does not show the allowed value: %v", err)
	}
	q.MRTD[0] ^= 1
	if err := p.CheckTDX(q); !slices.Equal(rules(err), []string{"mr_td", "rtmr3"}) {
		t.Fatalf("%v", err)
	}
	q.MRTD[0] ^= 1
	q.RTMR[3] = make([]byte, 48)
	if err := p.CheckTDX(q); err != nil {
		t.Fatal(err)
	}
	// A v4 quote has no MRSERVICETD: a policy listing one fails.
	p.TDX.MRTD = []validate.Hex{q.MRTD}
	p.TDX.MRServiceTD = []validate.Hex{make([]byte, 48)}
	if err := p.CheckTDX(q); !slices.Equal(rules(err), []string{"mr_servicetd"}) {
		t.Fatalf("%v", err)
	}
	q.MRServiceTD = make([]byte, 48)
	if err := p.CheckTDX(q); err != nil {
		t.Fatal(err)
	}
}

func TestMinimums(t *testing.T) {
	min := func(v uint32) *uint32 { return &v }
	p := &validate.Policy{SEVSNP: &validate.SNPPolicy{MinGuestSVN: min(2), MinReportedTCB: &validate.TCB{Bootloader: 3, SNP: 8, Microcode: 115}}}
	r := snpReport()
	for svn, pass := range map[uint32]bool{1: false, 2: true, 3: true} {
		r.GuestSVN = svn
		got := rules(p.CheckSNP(r))
		if pass != (len(got) == 0) || (!pass && !slices.Equal(got, []string{"min_guest_svn"})) {
			t.Errorf("guest_svn %d: violations %v", svn, got)
		}
	}
	r.GuestSVN = 2
	for name, c := range map[string]struct {
		tcb  validate.TCB
		pass bool
	}{
		"equal":              {validate.TCB{Bootloader: 3, SNP: 8, Microcode: 115}, true},
		"above":              {validate.TCB{Bootloader: 4, SNP: 9, Microcode: 200}, true},
		"microcode below":    {validate.TCB{Bootloader: 3, SNP: 8, Microcode: 114}, false},
		"SNP firmware below": {validate.TCB{Bootloader: 9, SNP: 7, Microcode: 200}, false},
	} {
		v := uint64(c.tcb.Microcode)<<56 | uint64(c.tcb.SNP)<<48 | uint64(c.tcb.TEE)<<8 | uint64(c.tcb.Bootloader)
		r.ReportedTCB, r.CurrentTCB, r.CommittedTCB = v, v, v
		got := rules(p.CheckSNP(r))
		if c.pass != (len(got) == 0) || (!c.pass && !slices.Equal(got, []string{"min_reported_tcb"})) {
			t.Errorf("%s: violations %v", name, got)
		}
	}
	tp := &validate.Policy{TDX: &validate.TDXPolicy{MinTeeTCBSVN: []byte{7, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}
	q := tdxQuote()
	if err := tp.CheckTDX(q); err != nil {
		t.Fatalf("equal TCB SVN: %v", err)
	}
	q.TeeTCBSVN = []byte{9, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := tp.CheckTDX(q); err != nil {
		t.Fatalf("higher TCB SVN: %v", err)
	}
	q.TeeTCBSVN = []byte{9, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := rules(tp.CheckTDX(q)); !slices.Equal(got, []string{"min_tee_tcb_svn"}) {
		t.Fatalf("one component below: %v", got)
	}
	vp := &validate.Policy{SEVSNP: &validate.SNPPolicy{VMPL: []uint32{0}}}
	r.VMPL = 2
	if got := rules(vp.CheckSNP(r)); !slices.Equal(got, []string{"vmpl"}) {
		t.Fatalf("VMPL 2 against [0]: %v", got)
	}
}

func TestHygieneRulesFailByNameAndRelaxByName(t *testing.T) {
	tdx := map[string]func(q *validate.TDXQuote){
		validate.RuleDebug:              func(q *validate.TDXQuote) { q.TDAttributes[0] |= 1 },
		validate.RuleReservedAttributes: func(q *validate.TDXQuote) { q.TDAttributes[1] |= 1 },
		validate.RuleSEPTVEDisable:      func(q *validate.TDXQuote) { q.TDAttributes[3] = 0 },
	}
	if err := (*validate.Policy)(nil).CheckTDX(tdxQuote()); err != nil {
		t.Fatalf("a clean quote fails hygiene: %v", err)
	}
	for _, rule := range validate.TDXRules {
		q := tdxQuote()
		tdx[rule](q)
		if got := rules((*validate.Policy)(nil).CheckTDX(q)); !slices.Equal(got, []string{rule}) {
			t.Errorf("tdx %s: violations %v", rule, got)
		}
		p := &validate.Policy{TDX: &validate.TDXPolicy{Relax: []string{rule}}}
		if err := p.CheckTDX(q); err != nil {
			t.Errorf("tdx %s relaxed: %v", rule, err)
		}
	}
	snp := map[string]func(r *validate.SNPReport){
		validate.RuleDebug:          func(r *validate.SNPReport) { r.GuestPolicy |= 1 << 19 },
		validate.RuleCommittedTCB:   func(r *validate.SNPReport) { r.CommittedTCB += 1 << 48 },
		validate.RuleReportVersion:  func(r *validate.SNPReport) { r.Version = 1 },
		validate.RuleMigrationAgent: func(r *validate.SNPReport) { r.GuestPolicy |= 1 << 18 },
		validate.RuleSMT:            func(r *validate.SNPReport) { r.PlatformInfo |= 1 },
	}
	if err := (*validate.Policy)(nil).CheckSNP(snpReport()); err != nil {
		t.Fatalf("a clean report fails hygiene: %v", err)
	}
	for _, rule := range validate.SNPRules {
		r := snpReport()
		snp[rule](r)
		if got := rules((*validate.Policy)(nil).CheckSNP(r)); !slices.Equal(got, []string{rule}) {
			t.Errorf("sev-snp %s: violations %v", rule, got)
		}
		p := &validate.Policy{SEVSNP: &validate.SNPPolicy{Relax: []string{rule}}}
		if err := p.CheckSNP(r); err != nil {
			t.Errorf("sev-snp %s relaxed: %v", rule, err)
		}
		// Relaxing another rule does not waive this one.
		other := validate.SNPRules[(slices.Index(validate.SNPRules, rule)+1)%len(validate.SNPRules)]
		p.SEVSNP.Relax = []string{other}
		if got := rules(p.CheckSNP(r)); !slices.Equal(got, []string{rule}) {
			t.Errorf("sev-snp %s with %s relaxed: violations %v", rule, other, got)
		}
	}
}

func TestPinsWorkload(t *testing.T) {
	for doc, want := range map[string][2]bool{ // tdx, sev-snp
		"accepted_tcb_status: [UpToDate]\n":                               {false, false},
		"tdx:\n  mr_seam: [\"" + h48 + "\"]\n":                            {false, false},
		"tdx:\n  mr_td: [\"" + h48 + "\"]\n":                              {true, false},
		"tdx:\n  rtmr3: [\"" + h48 + "\"]\n":                              {true, false},
		"sev-snp:\n  measurement: [\"" + h48 + "\"]\n":                    {false, true},
		"sev-snp:\n  family_id: [\"" + h16 + "\"]\n":                      {false, false},
		"sev-snp:\n  host_data: [\"" + strings.Repeat("00", 32) + "\"]\n": {false, true},
	} {
		p, err := validate.Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if p.PinsWorkload(validate.TDX) != want[0] || p.PinsWorkload(validate.SEVSNP) != want[1] {
			t.Errorf("%q: pins tdx %v, sev-snp %v; want %v", doc, p.PinsWorkload(validate.TDX), p.PinsWorkload(validate.SEVSNP), want)
		}
	}
	if (*validate.Policy)(nil).PinsWorkload(validate.TDX) {
		t.Fatal("no policy pins a workload")
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("tdx:\n  mr_td: [\"" + h48 + "\"]\n  relax: [debug]\n"))
	f.Add([]byte(`{"sev-snp":{"measurement":["` + h48 + `"],"guest_svn":[1],"min_reported_tcb":{"snp":8}},"accepted_tcb_status":["UpToDate"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := validate.Parse(data)
		if err != nil {
			return
		}
		// A policy that loads is valid and can be checked against anything.
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a policy Validate refuses: %v", err)
		}
		p.CheckTDX(tdxQuote())
		p.CheckSNP(snpReport())
	})
}

// Report version 2 is the first the rule accepts (the SEV-SNP ABI's
// first released format); version 1 is refused.
func TestReportVersionTwoIsAccepted(t *testing.T) {
	for v, want := range map[uint32][]string{1: {validate.RuleReportVersion}, 2: nil, 3: nil, 5: nil} {
		r := snpReport()
		r.Version = v
		if got := rules((*validate.Policy)(nil).CheckSNP(r)); !slices.Equal(got, want) {
			t.Errorf("report version %d: violations %v, want %v", v, got, want)
		}
	}
}
