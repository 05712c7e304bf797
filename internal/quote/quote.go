// Package quote converts attestation quotes between bytes, their text file
// encodings and named fields: TDX v4/v5 quotes and AMD SEV-SNP reports,
// detected from the bytes. It checks structure, not authenticity (that is
// the verify package's job).
package quote

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	sevabi "github.com/google/go-sev-guest/abi"
	sevpb "github.com/google/go-sev-guest/proto/sevsnp"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
)

// Kind is a quote format.
type Kind string

const (
	// TDX is an Intel TDX quote (version 4 or 5).
	TDX Kind = "tdx"
	// SEVSNP is an AMD SEV-SNP attestation report.
	SEVSNP Kind = "sev-snp"
)

// SNPReportSize is the size of a raw SEV-SNP ATTESTATION_REPORT.
const SNPReportSize = 1184

// MaxQuoteSize bounds the quotes teesign decodes (a TDX quote with its PCK
// chain is about 5 KB).
const MaxQuoteSize = 64 << 10

// Evidence is an attestation quote as a TEE returned it.
type Evidence struct {
	// Kind is the quote's format.
	Kind Kind
	// Raw is the quote: a TDX quote or a 1184-byte SEV-SNP report.
	Raw []byte
	// CertTable is the SEV-SNP certificate table (AMD's GUID table format)
	// when the host supplied one, else nil.
	CertTable []byte
}

// tdxMinSize is a TDX quote's header and v4 body; the signature data follows.
const tdxMinSize = 48 + 584

// Detect tells a TDX quote from a SEV-SNP report by its header.
func Detect(raw []byte) (Kind, error) {
	if len(raw) >= tdxMinSize {
		v := binary.LittleEndian.Uint16(raw[0:2])
		tee := binary.LittleEndian.Uint32(raw[4:8])
		if (v == 4 || v == 5) && tee == tdxabi.TeeTDX {
			return TDX, nil
		}
	}
	if len(raw) == SNPReportSize {
		v := binary.LittleEndian.Uint32(raw[0:4])
		if v >= 2 && v <= 5 {
			return SEVSNP, nil
		}
	}
	return "", fmt.Errorf("quote of %d bytes is neither a TDX v4/v5 quote (at least 632 bytes, version 4 or 5, TEE type 0x81) nor a %d-byte SEV-SNP report (version 2 to 5)", len(raw), SNPReportSize)
}

// Decode reads a quote as a file or a request holds it: the raw bytes
// (what configfs-tsm and /dev/sev-guest produce), or text: hex in either
// case with or without a 0x prefix, or base64 (standard or URL-safe, with
// or without padding), whitespace and line breaks ignored. It returns the
// raw bytes and their kind; an error names every form tried.
func Decode(text []byte) ([]byte, Kind, error) {
	if len(text) > 4*MaxQuoteSize {
		return nil, "", fmt.Errorf("quote is %d bytes, more than the %d-byte limit allows in any encoding", len(text), MaxQuoteSize)
	}
	if k, err := Detect(text); err == nil {
		return append([]byte(nil), text...), k, nil
	}
	if r, ok := azureHCL(text); ok {
		return r, SEVSNP, nil
	}
	s := strings.Join(strings.Fields(string(text)), "")
	if s == "" {
		return nil, "", errors.New("quote is empty")
	}
	if len(s) > 2*MaxQuoteSize {
		return nil, "", fmt.Errorf("quote text is %d characters, more than the %d-byte limit allows", len(s), MaxQuoteSize)
	}
	var errs []string
	try := func(form string, raw []byte, err error) ([]byte, Kind, bool) {
		if err != nil {
			return nil, "", false
		}
		k, err := Detect(raw)
		if err != nil {
			errs = append(errs, "as "+form+": "+err.Error())
			return nil, "", false
		}
		return raw, k, true
	}
	hexText := s
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		hexText = s[2:]
	}
	if b, err := hex.DecodeString(hexText); err == nil {
		if raw, k, ok := try("hex", b, nil); ok {
			return raw, k, nil
		}
	}
	for _, e := range []struct {
		form string
		enc  *base64.Encoding
	}{
		{"base64", base64.StdEncoding}, {"unpadded base64", base64.RawStdEncoding},
		{"URL-safe base64", base64.URLEncoding}, {"unpadded URL-safe base64", base64.RawURLEncoding},
	} {
		b, err := e.enc.Strict().DecodeString(s)
		if raw, k, ok := try(e.form, b, err); ok {
			return raw, k, nil
		}
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("quote of %d bytes is not a raw TDX quote or SEV-SNP report, nor hex (with or without 0x), nor base64 (standard or URL-safe, padded or not)%s", len(text), notAQuote(text))
	}
	return nil, "", errors.New("quote is not a TDX quote or SEV-SNP report (" + strings.Join(errs, "; ") + ")")
}

// hclHeaderSize is the header of an Azure HCL report before its SEV-SNP
// report.
const hclHeaderSize = 32

// azureHCL returns the SEV-SNP report inside an Azure HCL report ("HCLA"
// header), if raw is one.
func azureHCL(raw []byte) ([]byte, bool) {
	if len(raw) < hclHeaderSize+SNPReportSize || string(raw[:4]) != "HCLA" {
		return nil, false
	}
	r := append([]byte(nil), raw[hclHeaderSize:hclHeaderSize+SNPReportSize]...)
	if k, err := Detect(r); err != nil || k != SEVSNP {
		return nil, false
	}
	return r, true
}

// Note says what a reader of the quote text must know beyond its fields:
// for an Azure HCL report, that the SEV-SNP report was taken out of it
// and that Azure's paravisor, not the guest, chose its report_data. It
// is "" for other quotes.
func Note(text []byte) string {
	if _, ok := azureHCL(text); ok {
		return "an Azure HCL report: its SEV-SNP report was extracted; Azure's paravisor owns report_data (a digest of the vTPM's runtime claims), so it cannot bind a teesign key"
	}
	return ""
}

// notAQuote names evidence that is not a TDX or SEV-SNP quote but is
// often mistaken for one.
func notAQuote(raw []byte) string {
	if len(raw) >= 8 && binary.LittleEndian.Uint16(raw[0:2]) == 3 && binary.LittleEndian.Uint32(raw[4:8]) == 0 {
		return ": it looks like an SGX (version 3) quote, which attests an enclave, not a TD"
	}
	return ""
}

// Encode returns the file encoding SPEC fixes for a quote of kind k: TDX as
// lowercase hex, SEV-SNP as standard base64; one line, trailing newline.
func Encode(k Kind, raw []byte) []byte {
	var s string
	if k == SEVSNP {
		s = base64.StdEncoding.EncodeToString(raw)
	} else {
		s = hex.EncodeToString(raw)
	}
	return []byte(s + "\n")
}

// Fields are a quote's parsed fields, lowercase hex strings (numbers as
// decimal), under the names `teesign quote inspect` prints.
type Fields map[string]any

// Parse checks the quote's structure and returns its fields.
func Parse(raw []byte) (Kind, Fields, error) {
	p, err := ParseAll(raw)
	if err != nil {
		return "", nil, err
	}
	return p.Kind, p.Fields, nil
}

// Parsed is a structurally valid quote read once: its kind, its fields,
// and the library's decoding of it for the checks that need one.
type Parsed struct {
	Kind   Kind
	Fields Fields
	// TDX is go-tdx-guest's decoding of a TDX quote (*tdxpb.QuoteV4 or
	// *tdxpb.QuoteV5); nil for SEV-SNP.
	TDX any
	// SNP is go-sev-guest's decoding of a SEV-SNP report; nil for TDX.
	SNP *sevpb.Report
}

// ParseAll reads a raw quote or report as Parse does, keeping the
// library's decoding too.
func ParseAll(raw []byte) (*Parsed, error) {
	k, err := Detect(raw)
	if err != nil {
		return nil, err
	}
	p := &Parsed{Kind: k}
	if k == SEVSNP {
		if p.SNP, err = ParseSNP(raw); err != nil {
			return nil, fmt.Errorf("SEV-SNP report: %w", err)
		}
		p.Fields = snpFields(p.SNP)
		return p, nil
	}
	if p.TDX, err = ParseTDX(raw); err != nil {
		return nil, fmt.Errorf("TDX quote: %w", err)
	}
	if p.Fields, err = tdxFields(raw, p.TDX); err != nil {
		return nil, err
	}
	return p, nil
}

// ReportData returns the 64-byte report_data of a structurally valid quote.
func ReportData(raw []byte) ([]byte, error) {
	k, err := Detect(raw)
	if err != nil {
		return nil, err
	}
	if k == SEVSNP {
		return append([]byte(nil), raw[0x50:0x90]...), nil
	}
	q, err := ParseTDX(raw)
	if err != nil {
		return nil, fmt.Errorf("TDX quote: %w", err)
	}
	return TDXBody(q).GetReportData(), nil
}

// ParseTDX decodes a raw TDX quote with go-tdx-guest's abi package. That
// decoder slices by sizes read from the quote and can panic on a crafted one
// (FuzzQuoteDecode found such an input, kept in testdata/fuzz): the panic is
// turned into an error, since quotes come from untrusted parties.
func ParseTDX(raw []byte) (q any, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, fmt.Errorf("malformed TDX quote: %v", r)
		}
	}()
	return tdxabi.QuoteToProto(raw)
}

// ParseSNP decodes a raw SEV-SNP report with go-sev-guest's abi package,
// turning a panic into an error as ParseTDX does.
func ParseSNP(raw []byte) (r *sevpb.Report, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			r, err = nil, fmt.Errorf("malformed SEV-SNP report: %v", rec)
		}
	}()
	return sevabi.ReportToProto(raw)
}

// TDXBody returns the TD quote body of a parsed v4 or v5 quote.
func TDXBody(q any) *tdxpb.TDQuoteBody {
	switch q := q.(type) {
	case *tdxpb.QuoteV4:
		return q.GetTdQuoteBody()
	case *tdxpb.QuoteV5:
		d := q.GetTdQuoteBodyDescriptor()
		if b5 := d.GetTdQuoteBodyV5(); b5 != nil {
			return &tdxpb.TDQuoteBody{
				TeeTcbSvn: b5.TeeTcbSvn, MrSeam: b5.MrSeam, MrSignerSeam: b5.MrSignerSeam,
				SeamAttributes: b5.SeamAttributes, TdAttributes: b5.TdAttributes, Xfam: b5.Xfam,
				MrTd: b5.MrTd, MrConfigId: b5.MrConfigId, MrOwner: b5.MrOwner, MrOwnerConfig: b5.MrOwnerConfig,
				Rtmrs: b5.Rtmrs, ReportData: b5.ReportData,
			}
		}
	}
	return nil
}

func tdxFields(raw []byte, q any) (Fields, error) {
	if err := tdxabi.CheckQuote(q); err != nil {
		return nil, fmt.Errorf("TDX quote: %w", err)
	}
	b := TDXBody(q)
	if b == nil || len(b.Rtmrs) != 4 {
		return nil, errors.New("TDX quote: no TD quote body with 4 RTMRs")
	}
	version := binary.LittleEndian.Uint16(raw[0:2])
	h := hex.EncodeToString
	f := Fields{
		"version":         int(version),
		"tee_type":        fmt.Sprintf("%08x", binary.LittleEndian.Uint32(raw[4:8])),
		"tee_tcb_svn":     h(b.TeeTcbSvn),
		"mr_seam":         h(b.MrSeam),
		"mr_signer_seam":  h(b.MrSignerSeam),
		"seam_attributes": h(b.SeamAttributes),
		"td_attributes":   h(b.TdAttributes),
		"xfam":            h(b.Xfam),
		"mr_td":           h(b.MrTd),
		"mr_config_id":    h(b.MrConfigId),
		"mr_owner":        h(b.MrOwner),
		"mr_owner_config": h(b.MrOwnerConfig),
		"rtmr0":           h(b.Rtmrs[0]),
		"rtmr1":           h(b.Rtmrs[1]),
		"rtmr2":           h(b.Rtmrs[2]),
		"rtmr3":           h(b.Rtmrs[3]),
		"report_data":     h(b.ReportData),
		"debug":           TDXDebug(b.TdAttributes),
	}
	if q5, ok := q.(*tdxpb.QuoteV5); ok {
		if b5 := q5.GetTdQuoteBodyDescriptor().GetTdQuoteBodyV5(); b5 != nil { // a TDX 1.5 body, not a 1.0 body in a v5 quote
			f["mr_servicetd"] = h(b5.GetMrServiceTd()) // TDX 1.5
			f["tee_tcb_svn2"] = h(b5.GetTeeTcbSvn2())
		}
	}
	return f, nil
}

// TDXDebug reports whether the TD's DEBUG attribute (bit 0) is set.
func TDXDebug(tdAttributes []byte) bool { return len(tdAttributes) > 0 && tdAttributes[0]&1 == 1 }

// SNPDebugBit is bit 19 of a SEV-SNP guest policy: debugging allowed.
const SNPDebugBit = 1 << 19

func snpFields(r *sevpb.Report) Fields {
	h := hex.EncodeToString
	return Fields{
		"version":       int(r.GetVersion()),
		"guest_svn":     int(r.GetGuestSvn()),
		"policy":        fmt.Sprintf("%016x", r.GetPolicy()),
		"family_id":     h(r.GetFamilyId()),
		"image_id":      h(r.GetImageId()),
		"vmpl":          int(r.GetVmpl()),
		"measurement":   h(r.GetMeasurement()),
		"host_data":     h(r.GetHostData()),
		"id_key_digest": h(r.GetIdKeyDigest()),
		"report_id":     h(r.GetReportId()),
		"report_data":   h(r.GetReportData()),
		"chip_id":       h(r.GetChipId()),
		"reported_tcb":  fmt.Sprintf("%016x", r.GetReportedTcb()),
		"current_tcb":   fmt.Sprintf("%016x", r.GetCurrentTcb()),
		"committed_tcb": fmt.Sprintf("%016x", r.GetCommittedTcb()),
		"launch_tcb":    fmt.Sprintf("%016x", r.GetLaunchTcb()),
		"platform_info": fmt.Sprintf("%016x", r.GetPlatformInfo()),
		"signer_info":   fmt.Sprintf("%08x", r.GetSignerInfo()),
		"debug":         r.GetPolicy()&SNPDebugBit != 0,
	}
}
