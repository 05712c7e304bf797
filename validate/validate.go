// Package validate checks an attestation quote's measurements against a
// typed policy: allow-lists of exact values, minimums for security version
// numbers, and hygiene rules (debug off, reserved bits clear, ...) that a
// policy can relax only by name. It is the policy half of teesign's
// verifier; package verify is the authenticity half.
package validate

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"sigs.k8s.io/yaml"
)

// TEE names, as quotes report them and policies spell their sections.
const (
	TDX    = "tdx"
	SEVSNP = "sev-snp"
)

// Policy is a verification policy: one section per TEE and the TCB
// statuses accepted from collateral. A quote is checked against the
// section of its own TEE; a field not listed is not checked.
type Policy struct {
	// TDX pins TDX quotes.
	TDX *TDXPolicy `json:"tdx,omitempty"`
	// SEVSNP pins SEV-SNP reports.
	SEVSNP *SNPPolicy `json:"sev-snp,omitempty"`
	// AcceptedTCBStatus lists the TCB statuses (Intel's names) accepted
	// for the platform and its QE when collateral is checked; default
	// UpToDate only. Revoked can never be accepted.
	AcceptedTCBStatus []string `json:"accepted_tcb_status,omitempty"`
}

// Hex is a byte string written as lowercase hex in a policy.
type Hex []byte

// MarshalText writes lowercase hex.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText reads lowercase hex.
func (h *Hex) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "" || strings.Trim(s, "0123456789abcdef") != "" || len(s)%2 != 0 {
		return fmt.Errorf("%q is not lowercase hex of whole bytes", shorten(s))
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// TDXPolicy pins a TDX quote. Byte fields are allow-lists of lowercase hex
// of the field's exact length.
type TDXPolicy struct {
	MRTD          []Hex `json:"mr_td,omitempty"`
	RTMR0         []Hex `json:"rtmr0,omitempty"`
	RTMR1         []Hex `json:"rtmr1,omitempty"`
	RTMR2         []Hex `json:"rtmr2,omitempty"`
	RTMR3         []Hex `json:"rtmr3,omitempty"`
	MRConfigID    []Hex `json:"mr_config_id,omitempty"`
	MROwner       []Hex `json:"mr_owner,omitempty"`
	MROwnerConfig []Hex `json:"mr_owner_config,omitempty"`
	MRSeam        []Hex `json:"mr_seam,omitempty"`
	MRSignerSeam  []Hex `json:"mr_signer_seam,omitempty"`
	// MRServiceTD is TDX 1.5's MRSERVICETD (quotes of version 5 with a
	// TD 1.5 body); a quote without one fails a policy that lists it.
	MRServiceTD []Hex `json:"mr_servicetd,omitempty"`
	// TeeTCBSVN2 is TDX 1.5's TEE_TCB_SVN2, likewise.
	TeeTCBSVN2     []Hex `json:"tee_tcb_svn2,omitempty"`
	TDAttributes   []Hex `json:"td_attributes,omitempty"`
	XFAM           []Hex `json:"xfam,omitempty"`
	SeamAttributes []Hex `json:"seam_attributes,omitempty"`
	TeeTCBSVN      []Hex `json:"tee_tcb_svn,omitempty"`
	// MinTeeTCBSVN is a minimum for each of TEE_TCB_SVN's 16 component
	// SVNs (hex of 16 bytes, one byte a component).
	MinTeeTCBSVN Hex `json:"min_tee_tcb_svn,omitempty"`
	// Relax names the hygiene rules (TDXRules) this policy waives.
	Relax []string `json:"relax,omitempty"`
}

// SNPPolicy pins an SEV-SNP report.
type SNPPolicy struct {
	Measurement     []Hex `json:"measurement,omitempty"`
	HostData        []Hex `json:"host_data,omitempty"`
	FamilyID        []Hex `json:"family_id,omitempty"`
	ImageID         []Hex `json:"image_id,omitempty"`
	IDKeyDigest     []Hex `json:"id_key_digest,omitempty"`
	AuthorKeyDigest []Hex `json:"author_key_digest,omitempty"`
	ChipID          []Hex `json:"chip_id,omitempty"`
	// GuestSVN allow-lists the guest SVN.
	GuestSVN []uint32 `json:"guest_svn,omitempty"`
	// MinGuestSVN is the lowest guest SVN accepted.
	MinGuestSVN *uint32 `json:"min_guest_svn,omitempty"`
	// VMPL allow-lists the VMPL the report was requested at (0-3).
	VMPL []uint32 `json:"vmpl,omitempty"`
	// MinReportedTCB is the lowest REPORTED_TCB accepted, per component.
	MinReportedTCB *TCB `json:"min_reported_tcb,omitempty"`
	// Relax names the hygiene rules (SNPRules) this policy waives.
	Relax []string `json:"relax,omitempty"`
}

// TCB is an SEV-SNP TCB version by component (the Milan and Genoa layout:
// bootloader, TEE, SNP firmware and microcode security patch levels).
type TCB struct {
	Bootloader uint8 `json:"bootloader"`
	TEE        uint8 `json:"tee"`
	SNP        uint8 `json:"snp"`
	Microcode  uint8 `json:"microcode"`
}

// TCBFromVersion splits a 64-bit TCB_VERSION into its components.
func TCBFromVersion(v uint64) TCB {
	return TCB{Bootloader: uint8(v), TEE: uint8(v >> 8), SNP: uint8(v >> 48), Microcode: uint8(v >> 56)}
}

// atLeast reports whether every component of t is at least min's, and
// names the first that is not.
func (t TCB) atLeast(min TCB) (string, bool) {
	for _, c := range []struct {
		name     string
		got, min uint8
	}{{"bootloader", t.Bootloader, min.Bootloader}, {"tee", t.TEE, min.TEE}, {"snp", t.SNP, min.SNP}, {"microcode", t.Microcode, min.Microcode}} {
		if c.got < c.min {
			return fmt.Sprintf("%s %d < %d", c.name, c.got, c.min), false
		}
	}
	return "", true
}

// Hygiene rules. Each fails a quote by default; a policy waives one only by
// listing its name under relax.
const (
	// RuleDebug: the TD or guest is not debuggable (TDX TD_ATTRIBUTES bit
	// 0; SEV-SNP guest policy bit 19): a debuggable guest's memory is open
	// to the host.
	RuleDebug = "debug"
	// RuleReservedAttributes: TDX TD_ATTRIBUTES has no bit set beyond
	// DEBUG, SEPT_VE_DISABLE, PKS and PERFMON.
	RuleReservedAttributes = "reserved_attributes"
	// RuleSEPTVEDisable: TDX SEPT_VE_DISABLE (TD_ATTRIBUTES bit 28) is
	// set, so the host cannot inject #VE through secure EPT faults.
	RuleSEPTVEDisable = "sept_ve_disable"
	// RuleCommittedTCB: SEV-SNP COMMITTED_TCB ≤ CURRENT_TCB component by
	// component.
	RuleCommittedTCB = "committed_tcb"
	// RuleReportVersion: the SEV-SNP report's version is at least 2.
	RuleReportVersion = "report_version"
	// RuleMigrationAgent: the SEV-SNP guest policy does not allow a
	// migration agent (bit 18), which could export the guest's memory.
	RuleMigrationAgent = "migration_agent"
	// RuleSMT: the SEV-SNP platform does not run SMT (PLATFORM_INFO bit 0),
	// which exposes the guest to sibling-thread side channels.
	RuleSMT = "smt"
)

// Rules are the hygiene rules of each TEE.
var (
	TDXRules = []string{RuleDebug, RuleReservedAttributes, RuleSEPTVEDisable}
	SNPRules = []string{RuleDebug, RuleCommittedTCB, RuleReportVersion, RuleMigrationAgent, RuleSMT}
)

// TCB statuses Intel's collateral names.
var tcbStatuses = []string{"UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded", "Revoked"}

// Parse reads a policy from YAML or JSON, strictly: unknown, duplicate or
// case-folded keys, values of the wrong type or length, and policies that
// can match nothing are errors.
func Parse(data []byte) (*Policy, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	var p Policy
	if err := json.Unmarshal(j, &p, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("policy: %s", describe(err))
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Load reads a policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data)
}

// examples shows the typed form of each field in decoding errors.
var examples = map[string]string{
	"guest_svn": "guest_svn: [3]", "min_guest_svn": "min_guest_svn: 3", "vmpl": "vmpl: [0]",
	"min_reported_tcb": "min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}",
	"bootloader":       "min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}",
	"tee":              "min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}",
	"snp":              "min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}",
	"microcode":        "min_reported_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}",
	"min_tee_tcb_svn":  "min_tee_tcb_svn: \"07010300000000000000000000000000\"",
	"relax":            "relax: [debug]",
}

// describe turns a decoding error into a message that says where and, for
// typed fields, shows the expected form.
func describe(err error) string {
	var se *json.SemanticError
	if errors.As(err, &se) {
		ptr := string(se.JSONPointer)
		var name string
		for _, tok := range strings.Split(ptr, "/") {
			if tok != "" && strings.Trim(tok, "0123456789") != "" {
				name = tok
			}
		}
		where := strings.TrimPrefix(strings.ReplaceAll(ptr, "/", "."), ".")
		if errors.Is(se.Err, json.ErrUnknownName) {
			return fmt.Sprintf("unknown field %s (see `teesign policy from-quote` for the fields of each TEE)", where)
		}
		if ex, ok := examples[name]; ok {
			return fmt.Sprintf("%s: wrong type (got JSON %s); an integer field is written as a number, for example %s", where, se.JSONKind, ex)
		}
		if se.Err != nil {
			return fmt.Sprintf("%s: %v", where, se.Err)
		}
		return fmt.Sprintf("%s: wrong type (got JSON %s)", where, se.JSONKind)
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		return fmt.Sprintf("malformed document at %s: %v", syn.JSONPointer, syn.Err)
	}
	return err.Error()
}

// field is one byte field of a policy section with its exact length.
type field struct {
	name string
	size int
	vals []Hex
}

func (t *TDXPolicy) fields() []field {
	return []field{
		{"mr_td", 48, t.MRTD}, {"rtmr0", 48, t.RTMR0}, {"rtmr1", 48, t.RTMR1}, {"rtmr2", 48, t.RTMR2}, {"rtmr3", 48, t.RTMR3},
		{"mr_config_id", 48, t.MRConfigID}, {"mr_owner", 48, t.MROwner}, {"mr_owner_config", 48, t.MROwnerConfig},
		{"mr_seam", 48, t.MRSeam}, {"mr_signer_seam", 48, t.MRSignerSeam}, {"mr_servicetd", 48, t.MRServiceTD},
		{"td_attributes", 8, t.TDAttributes}, {"xfam", 8, t.XFAM}, {"seam_attributes", 8, t.SeamAttributes},
		{"tee_tcb_svn", 16, t.TeeTCBSVN}, {"tee_tcb_svn2", 16, t.TeeTCBSVN2},
	}
}

func (s *SNPPolicy) fields() []field {
	return []field{
		{"measurement", 48, s.Measurement}, {"host_data", 32, s.HostData}, {"family_id", 16, s.FamilyID},
		{"image_id", 16, s.ImageID}, {"id_key_digest", 48, s.IDKeyDigest}, {"author_key_digest", 48, s.AuthorKeyDigest},
		{"chip_id", 64, s.ChipID},
	}
}

// Validate checks a policy decoded elsewhere (Parse calls it): lengths,
// empty lists, rule and status names, and that the policy can match
// something.
func (p *Policy) Validate() error {
	var errs []string
	checkFields := func(section string, fs []field) {
		for _, f := range fs {
			if f.vals != nil && len(f.vals) == 0 {
				errs = append(errs, fmt.Sprintf("%s.%s: an empty list allows nothing: list values or remove the field", section, f.name))
			}
			for _, v := range f.vals {
				if len(v) != f.size {
					errs = append(errs, fmt.Sprintf("%s.%s: %s is %d bytes, want %d (%d hex digits)", section, f.name, shorten(hex.EncodeToString(v)), len(v), f.size, 2*f.size))
				}
			}
		}
	}
	checkRelax := func(section string, relax, known []string) {
		for _, r := range relax {
			if !slices.Contains(known, r) {
				errs = append(errs, fmt.Sprintf("%s.relax: unknown rule %q (the %s rules: %s)", section, shorten(r), section, strings.Join(known, ", ")))
			}
		}
	}
	if t := p.TDX; t != nil {
		checkFields(TDX, t.fields())
		checkRelax(TDX, t.Relax, TDXRules)
		if t.MinTeeTCBSVN != nil {
			if len(t.MinTeeTCBSVN) != 16 {
				errs = append(errs, fmt.Sprintf("tdx.min_tee_tcb_svn: %d bytes, want 16 (32 hex digits, one byte a component)", len(t.MinTeeTCBSVN)))
			} else if len(t.TeeTCBSVN) > 0 && !slices.ContainsFunc(t.TeeTCBSVN, func(v Hex) bool { return svnAtLeast(v, t.MinTeeTCBSVN) }) {
				errs = append(errs, "tdx: no tee_tcb_svn listed reaches min_tee_tcb_svn: the policy can match nothing")
			}
		}
	}
	if s := p.SEVSNP; s != nil {
		checkFields(SEVSNP, s.fields())
		checkRelax(SEVSNP, s.Relax, SNPRules)
		if s.GuestSVN != nil && len(s.GuestSVN) == 0 {
			errs = append(errs, "sev-snp.guest_svn: an empty list allows nothing: list values or remove the field")
		}
		if s.VMPL != nil && len(s.VMPL) == 0 {
			errs = append(errs, "sev-snp.vmpl: an empty list allows nothing: list values or remove the field")
		}
		for _, v := range s.VMPL {
			if v > 3 {
				errs = append(errs, fmt.Sprintf("sev-snp.vmpl: %d is not a VMPL (0 to 3)", v))
			}
		}
		if s.MinGuestSVN != nil && len(s.GuestSVN) > 0 && slices.Max(s.GuestSVN) < *s.MinGuestSVN {
			errs = append(errs, fmt.Sprintf("sev-snp: every guest_svn listed is below min_guest_svn %d: the policy can match nothing", *s.MinGuestSVN))
		}
	}
	for _, st := range p.AcceptedTCBStatus {
		switch {
		case st == "Revoked":
			errs = append(errs, "accepted_tcb_status: Revoked cannot be accepted")
		case !slices.Contains(tcbStatuses, st):
			errs = append(errs, fmt.Sprintf("accepted_tcb_status: unknown status %q (Intel's statuses: %s)", shorten(st), strings.Join(tcbStatuses[:len(tcbStatuses)-1], ", ")))
		}
	}
	if p.AcceptedTCBStatus != nil && len(p.AcceptedTCBStatus) == 0 {
		errs = append(errs, "accepted_tcb_status: an empty list accepts nothing: list statuses or remove the field (default UpToDate)")
	}
	if len(errs) > 0 {
		return errors.New("policy: " + strings.Join(errs, "; "))
	}
	return nil
}

// PinsWorkload reports whether the policy pins the workload of quotes of
// the given TEE: for TDX one of mr_td, rtmr0-3, mr_config_id, mr_owner or
// mr_owner_config; for SEV-SNP one of measurement, host_data, image_id,
// id_key_digest or author_key_digest. Without that, any workload on a
// genuine machine would pass.
func (p *Policy) PinsWorkload(tee string) bool {
	if p == nil {
		return false
	}
	switch tee {
	case TDX:
		t := p.TDX
		return t != nil && (len(t.MRTD)+len(t.RTMR0)+len(t.RTMR1)+len(t.RTMR2)+len(t.RTMR3)+len(t.MRConfigID)+len(t.MROwner)+len(t.MROwnerConfig)) > 0
	case SEVSNP:
		s := p.SEVSNP
		return s != nil && (len(s.Measurement)+len(s.HostData)+len(s.ImageID)+len(s.IDKeyDigest)+len(s.AuthorKeyDigest)) > 0
	}
	return false
}

// AcceptedTCBStatusOrDefault returns the accepted TCB statuses: the
// policy's list, or just UpToDate.
func (p *Policy) AcceptedTCBStatusOrDefault() []string {
	if p == nil || len(p.AcceptedTCBStatus) == 0 {
		return []string{"UpToDate"}
	}
	return p.AcceptedTCBStatus
}

// TCBAccepted reports whether a TCB status passes.
func (p *Policy) TCBAccepted(status string) bool {
	return status != "Revoked" && slices.Contains(p.AcceptedTCBStatusOrDefault(), status)
}

// Violation is one way a quote fails a policy.
type Violation struct {
	// Rule is the field (mr_td, min_guest_svn, ...) or hygiene rule
	// (debug, smt, ...) that failed.
	Rule string `json:"rule"`
	// Detail says what the quote has and what the policy wants.
	Detail string `json:"detail"`
}

// Error lists a quote's violations of a policy.
type Error struct {
	Violations []Violation
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Rule + ": " + v.Detail
	}
	return strings.Join(parts, "; ")
}

// Rules returns the names of the violated rules, in order.
func (e *Error) Rules() []string {
	out := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		out[i] = v.Rule
	}
	return out
}

type checker struct{ v []Violation }

func (c *checker) fail(rule, format string, args ...any) {
	c.v = append(c.v, Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)})
}

func (c *checker) allowed(f field, got []byte) {
	if len(f.vals) == 0 {
		return
	}
	if got == nil {
		c.fail(f.name, "the quote has no %s", f.name)
		return
	}
	if !slices.ContainsFunc(f.vals, func(v Hex) bool { return bytes.Equal(v, got) }) {
		want := make([]string, len(f.vals))
		for i, v := range f.vals {
			want[i] = hex.EncodeToString(v)
		}
		c.fail(f.name, "is %x, allowed: %s", got, strings.Join(want, ", "))
	}
}

func (c *checker) hygiene(rule string, relax []string, bad bool, format string, args ...any) {
	if bad && !slices.Contains(relax, rule) {
		c.fail(rule, format+" (relax: [%s] waives this rule)", append(args, rule)...)
	}
}

func (c *checker) err() error {
	if len(c.v) == 0 {
		return nil
	}
	return &Error{Violations: c.v}
}

// TDXQuote is what a TDX policy reads from a quote (see TDXQuoteOf).
type TDXQuote struct {
	TeeTCBSVN, MRSeam, MRSignerSeam, SeamAttributes, TDAttributes, XFAM []byte
	MRTD, MRConfigID, MROwner, MROwnerConfig                            []byte
	RTMR                                                                [4][]byte
	// MRServiceTD and TeeTCBSVN2 are nil unless the quote has a TDX 1.5
	// body.
	MRServiceTD, TeeTCBSVN2 []byte
}

// TD_ATTRIBUTES bits (Intel TDX module ABI).
const (
	tdAttrDebug         = 1 << 0
	tdAttrSEPTVEDisable = 1 << 28
	tdAttrPKS           = 1 << 30
	tdAttrPerfmon       = 1 << 63
	tdAttrKnown         = tdAttrDebug | tdAttrSEPTVEDisable | tdAttrPKS | tdAttrPerfmon
)

// CheckTDX checks a TDX quote against the policy's tdx section (an absent
// section, or a nil policy, checks hygiene only). It returns nil or an *Error.
func (p *Policy) CheckTDX(q *TDXQuote) error {
	var t *TDXPolicy
	if p != nil {
		t = p.TDX
	}
	if t == nil {
		t = &TDXPolicy{}
	}
	var c checker
	got := map[string][]byte{
		"mr_td": q.MRTD, "rtmr0": q.RTMR[0], "rtmr1": q.RTMR[1], "rtmr2": q.RTMR[2], "rtmr3": q.RTMR[3],
		"mr_config_id": q.MRConfigID, "mr_owner": q.MROwner, "mr_owner_config": q.MROwnerConfig,
		"mr_seam": q.MRSeam, "mr_signer_seam": q.MRSignerSeam, "mr_servicetd": q.MRServiceTD,
		"td_attributes": q.TDAttributes, "xfam": q.XFAM, "seam_attributes": q.SeamAttributes, "tee_tcb_svn": q.TeeTCBSVN, "tee_tcb_svn2": q.TeeTCBSVN2,
	}
	for _, f := range t.fields() {
		c.allowed(f, got[f.name])
	}
	if t.MinTeeTCBSVN != nil && !svnAtLeast(q.TeeTCBSVN, t.MinTeeTCBSVN) {
		c.fail("min_tee_tcb_svn", "tee_tcb_svn %x is below the minimum %x in at least one component", q.TeeTCBSVN, []byte(t.MinTeeTCBSVN))
	}
	var a [8]byte
	copy(a[:], q.TDAttributes) // little-endian, 8 bytes
	attrs := binary.LittleEndian.Uint64(a[:])
	c.hygiene(RuleDebug, t.Relax, attrs&tdAttrDebug != 0, "the TD is debuggable (TD_ATTRIBUTES %x): the host can read its memory", q.TDAttributes)
	c.hygiene(RuleReservedAttributes, t.Relax, attrs&^tdAttrKnown != 0, "TD_ATTRIBUTES %x sets bits other than DEBUG, SEPT_VE_DISABLE, PKS and PERFMON", q.TDAttributes)
	c.hygiene(RuleSEPTVEDisable, t.Relax, attrs&tdAttrSEPTVEDisable == 0, "SEPT_VE_DISABLE (TD_ATTRIBUTES bit 28) is clear: the host can inject #VE through secure EPT")
	return c.err()
}

// SNPReport is what an SEV-SNP policy reads from a report (see
// SNPReportOf).
type SNPReport struct {
	Version, GuestSVN, VMPL                                          uint32
	GuestPolicy, PlatformInfo, ReportedTCB, CurrentTCB, CommittedTCB uint64
	Measurement, HostData, FamilyID, ImageID, IDKeyDigest            []byte
	AuthorKeyDigest, ChipID                                          []byte
}

// SEV-SNP guest policy and platform info bits (AMD SEV-SNP firmware ABI).
const (
	snpPolicyMigrateMA = 1 << 18
	snpPolicyDebug     = 1 << 19
	snpPlatformSMT     = 1 << 0
)

// CheckSNP checks an SEV-SNP report against the policy's sev-snp section
// (an absent section, or a nil policy, checks hygiene only). It returns nil or an *Error.
func (p *Policy) CheckSNP(r *SNPReport) error {
	var s *SNPPolicy
	if p != nil {
		s = p.SEVSNP
	}
	if s == nil {
		s = &SNPPolicy{}
	}
	var c checker
	got := map[string][]byte{
		"measurement": r.Measurement, "host_data": r.HostData, "family_id": r.FamilyID, "image_id": r.ImageID,
		"id_key_digest": r.IDKeyDigest, "author_key_digest": r.AuthorKeyDigest, "chip_id": r.ChipID,
	}
	for _, f := range s.fields() {
		c.allowed(f, got[f.name])
	}
	if len(s.GuestSVN) > 0 && !slices.Contains(s.GuestSVN, r.GuestSVN) {
		c.fail("guest_svn", "is %d, allowed: %v", r.GuestSVN, s.GuestSVN)
	}
	if s.MinGuestSVN != nil && r.GuestSVN < *s.MinGuestSVN {
		c.fail("min_guest_svn", "guest_svn %d is below the minimum %d", r.GuestSVN, *s.MinGuestSVN)
	}
	if len(s.VMPL) > 0 && !slices.Contains(s.VMPL, r.VMPL) {
		c.fail("vmpl", "is %d, allowed: %v", r.VMPL, s.VMPL)
	}
	if s.MinReportedTCB != nil {
		if which, ok := TCBFromVersion(r.ReportedTCB).atLeast(*s.MinReportedTCB); !ok {
			c.fail("min_reported_tcb", "reported_tcb %016x is below the minimum: %s", r.ReportedTCB, which)
		}
	}
	c.hygiene(RuleDebug, s.Relax, r.GuestPolicy&snpPolicyDebug != 0, "the guest policy (%016x) allows debugging: the host can read its memory", r.GuestPolicy)
	_, committedOK := TCBFromVersion(r.CurrentTCB).atLeast(TCBFromVersion(r.CommittedTCB))
	c.hygiene(RuleCommittedTCB, s.Relax, !committedOK, "committed_tcb %016x is above current_tcb %016x in a component", r.CommittedTCB, r.CurrentTCB)
	c.hygiene(RuleReportVersion, s.Relax, r.Version < 2, "report version %d is below 2", r.Version)
	c.hygiene(RuleMigrationAgent, s.Relax, r.GuestPolicy&snpPolicyMigrateMA != 0, "the guest policy (%016x) allows a migration agent", r.GuestPolicy)
	c.hygiene(RuleSMT, s.Relax, r.PlatformInfo&snpPlatformSMT != 0, "the platform runs SMT (platform_info %016x)", r.PlatformInfo)
	return c.err()
}

// svnAtLeast compares SVN arrays component by component.
func svnAtLeast(got, min []byte) bool {
	if len(got) != len(min) {
		return false
	}
	for i := range min {
		if got[i] < min[i] {
			return false
		}
	}
	return true
}

// shorten keeps messages about untrusted input short.
func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
