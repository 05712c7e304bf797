package validate

import (
	"fmt"

	spb "github.com/google/go-sev-guest/proto/sevsnp"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"
)

// TDXQuoteOf reads the fields a policy checks from a parsed TDX quote
// (*tdx.QuoteV4 or *tdx.QuoteV5 of go-tdx-guest's proto package).
func TDXQuoteOf(q any) (*TDXQuote, error) {
	switch q := q.(type) {
	case *tdxpb.QuoteV4:
		b := q.GetTdQuoteBody()
		if b == nil || len(b.GetRtmrs()) != 4 {
			return nil, fmt.Errorf("TDX quote v4: no TD quote body with 4 RTMRs")
		}
		return &TDXQuote{
			TeeTCBSVN: b.GetTeeTcbSvn(), MRSeam: b.GetMrSeam(), MRSignerSeam: b.GetMrSignerSeam(), SeamAttributes: b.GetSeamAttributes(),
			TDAttributes: b.GetTdAttributes(), XFAM: b.GetXfam(), MRTD: b.GetMrTd(), MRConfigID: b.GetMrConfigId(), MROwner: b.GetMrOwner(),
			MROwnerConfig: b.GetMrOwnerConfig(), RTMR: [4][]byte(b.GetRtmrs()),
		}, nil
	case *tdxpb.QuoteV5:
		b := q.GetTdQuoteBodyDescriptor().GetTdQuoteBodyV5()
		if b == nil || len(b.GetRtmrs()) != 4 {
			return nil, fmt.Errorf("TDX quote v5: no TD quote body with 4 RTMRs")
		}
		out := &TDXQuote{
			TeeTCBSVN: b.GetTeeTcbSvn(), MRSeam: b.GetMrSeam(), MRSignerSeam: b.GetMrSignerSeam(), SeamAttributes: b.GetSeamAttributes(),
			TDAttributes: b.GetTdAttributes(), XFAM: b.GetXfam(), MRTD: b.GetMrTd(), MRConfigID: b.GetMrConfigId(), MROwner: b.GetMrOwner(),
			MROwnerConfig: b.GetMrOwnerConfig(), RTMR: [4][]byte(b.GetRtmrs()),
		}
		if len(b.GetMrServiceTd()) > 0 {
			out.MRServiceTD, out.TeeTCBSVN2 = b.GetMrServiceTd(), b.GetTeeTcbSvn2()
		}
		return out, nil
	}
	return nil, fmt.Errorf("not a parsed TDX quote: %T", q)
}

// SNPReportOf reads the fields a policy checks from a parsed SEV-SNP
// report (go-sev-guest's proto).
func SNPReportOf(r *spb.Report) *SNPReport {
	return &SNPReport{
		Version: r.GetVersion(), GuestSVN: r.GetGuestSvn(), VMPL: r.GetVmpl(),
		GuestPolicy: r.GetPolicy(), PlatformInfo: r.GetPlatformInfo(),
		ReportedTCB: r.GetReportedTcb(), CurrentTCB: r.GetCurrentTcb(), CommittedTCB: r.GetCommittedTcb(),
		Measurement: r.GetMeasurement(), HostData: r.GetHostData(), FamilyID: r.GetFamilyId(), ImageID: r.GetImageId(),
		IDKeyDigest: r.GetIdKeyDigest(), AuthorKeyDigest: r.GetAuthorKeyDigest(), ChipID: r.GetChipId(),
	}
}
