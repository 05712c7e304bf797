// Package validate checks an attestation quote's measurements against a
// policy: for each listed field, the value found must be one of the values
// allowed. It is the policy half of teesign's verifier; package verify is
// the authenticity half.
package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Policy is a verification policy. Tdx and SevSnp map field names, as
// `teesign quote inspect` prints them, to lists of allowed lowercase hex
// values. A field not listed is not checked.
type Policy struct {
	Tdx    map[string][]string `json:"tdx,omitempty"`
	SevSnp map[string][]string `json:"sev_snp,omitempty"`
	// AllowDebug accepts quotes from debuggable TDs/guests (default false).
	AllowDebug bool `json:"allow_debug,omitempty"`
	// AcceptedTCBStatus lists the TCB statuses accepted (default UpToDate).
	AcceptedTCBStatus []string `json:"accepted_tcb_status,omitempty"`
}

// Field names a policy may list, per TEE.
var (
	tdxFields = []string{"tee_tcb_svn", "tcb_svn", "mr_seam", "mr_signer_seam", "seam_attributes", "td_attributes", "xfam", "mr_td",
		"mr_config_id", "mr_owner", "mr_owner_config", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "report_data"}
	snpFields = []string{"measurement", "host_data", "family_id", "image_id", "id_key_digest", "policy", "reported_tcb",
		"chip_id", "report_data", "guest_svn", "vmpl", "current_tcb", "committed_tcb", "launch_tcb", "platform_info"}
)

// Parse reads a policy from YAML or JSON, strictly: unknown keys, unknown
// field names and values that are not lowercase hex are errors.
func Parse(data []byte) (*Policy, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if dec.More() {
		return nil, errors.New("policy: trailing data")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that every listed field is known and every value is
// lowercase hex (Parse calls it; call it on a Policy decoded elsewhere).
func (p *Policy) Validate() error {
	if err := checkFields("tdx", p.Tdx, tdxFields); err != nil {
		return err
	}
	return checkFields("sev_snp", p.SevSnp, snpFields)
}

// Load reads a policy file.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data)
}

func checkFields(section string, m map[string][]string, known []string) error {
	for name, vals := range m {
		ok := false
		for _, k := range known {
			ok = ok || k == name
		}
		if !ok {
			return fmt.Errorf("policy: %s: unknown field %q (known: %s)", section, name, strings.Join(known, ", "))
		}
		if len(vals) == 0 {
			return fmt.Errorf("policy: %s.%s: empty list allows nothing: list values or remove the field", section, name)
		}
		for _, v := range vals {
			if v == "" || strings.Trim(v, "0123456789abcdef") != "" {
				return fmt.Errorf("policy: %s.%s: %q is not lowercase hex", section, name, v)
			}
		}
	}
	return nil
}

// Check compares the quote's fields (of TEE "tdx" or "sev-snp", as package
// quote names them) with the policy. It returns nil when every listed field
// matches and debug is acceptable; otherwise an error naming each mismatch.
func (p *Policy) Check(tee string, fields map[string]any) error {
	m := p.Tdx
	if tee == "sev-snp" {
		m = p.SevSnp
	}
	var errs []string
	if debug, _ := fields["debug"].(bool); debug && !p.AllowDebug {
		errs = append(errs, "the quote comes from a debuggable "+tee+" guest (its memory is readable by the host); set allow_debug: true to accept it")
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		key := name
		if key == "tcb_svn" {
			key = "tee_tcb_svn"
		}
		got := fmt.Sprint(fields[key])
		if fields[key] == nil {
			errs = append(errs, fmt.Sprintf("%s: the quote has no such field", name))
			continue
		}
		ok := false
		for _, v := range m[name] {
			ok = ok || v == got
		}
		if !ok {
			errs = append(errs, fmt.Sprintf("%s is %s, allowed: %s", name, got, strings.Join(m[name], ", ")))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// AcceptedTCBStatusOrDefault returns the accepted TCB statuses: the
// policy's list, or just UpToDate.
func (p *Policy) AcceptedTCBStatusOrDefault() []string {
	if len(p.AcceptedTCBStatus) == 0 {
		return []string{"UpToDate"}
	}
	return p.AcceptedTCBStatus
}

// TCBAccepted reports whether a TCB status passes.
func (p *Policy) TCBAccepted(status string) bool {
	for _, a := range p.AcceptedTCBStatusOrDefault() {
		if a == status {
			return true
		}
	}
	return false
}
