package attest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/report"
	sevclient "github.com/google/go-sev-guest/client"

	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/quote"
)

// configfsProvider gets quotes from the kernel's configfs-tsm report
// interface, as go-tdx-guest's and go-sev-guest's configfs quote providers
// do, with the client injectable so tests can run it on a fake configfs.
type configfsProvider struct {
	tsm  configfsi.Client
	kind quote.Kind
	// vmpl is the SEV-SNP privilege level reports are asked at: the
	// kernel's privlevel_floor, the guest's own VMPL (above 0 under an
	// SVSM, where asking for VMPL0 fails with EINVAL).
	vmpl    uint
	backoff time.Duration
	// openDev opens /dev/sev-guest, which derives SEV-SNP sealing keys
	// (configfs-tsm does not); nil for TDX.
	openDev func() (sevclient.Device, error)
}

// Sealer implements Sealing for SEV-SNP; TDX has no sealing key.
func (p *configfsProvider) Sealer(ev *quote.Evidence) (keystore.Sealer, error) {
	if p.openDev == nil {
		return nil, nil
	}
	return snpHardwareSealer(p.openDev, ev)
}

func tsmProviderName(k quote.Kind) string {
	if k == quote.TDX {
		return "tdx_guest"
	}
	return "sev_guest"
}

func newConfigfs(o Options, k quote.Kind) (*configfsProvider, error) {
	tsm, err := tsmClient(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	got, err := probeProvider(tsm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k, err)
	}
	if want := tsmProviderName(k); got != want {
		return nil, fmt.Errorf("%s: configfs-tsm provider is %q, not %q: this is not a %s guest", k, got, want, k)
	}
	p := &configfsProvider{tsm: tsm, kind: k, backoff: o.RetryBackoff}
	if k == quote.SEVSNP {
		if p.vmpl, err = privlevelFloor(tsm); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return p, nil
}

// openProbe opens a report entry for reading its attributes, with
// report_data written: the kernel makes a quote only when outblob is read,
// so this costs none.
func openProbe(tsm configfsi.Client) (*report.OpenReport, error) {
	r, err := report.CreateOpenReport(tsm)
	if err != nil {
		return nil, explainTSM(err)
	}
	if err := r.WriteOption("inblob", make([]byte, 64)); err != nil {
		r.Destroy()
		return nil, explainTSM(err)
	}
	return r, nil
}

// probeProvider reads which provider backs configfs-tsm, without asking
// for a quote.
func probeProvider(tsm configfsi.Client) (string, error) {
	r, err := openProbe(tsm)
	if err != nil {
		return "", err
	}
	defer r.Destroy()
	b, err := r.ReadOption("provider")
	if err != nil {
		return "", explainTSM(err)
	}
	return strings.TrimSpace(string(b)), nil
}

// privlevelFloor reads the lowest VMPL the guest may ask reports at.
func privlevelFloor(tsm configfsi.Client) (uint, error) {
	r, err := openProbe(tsm)
	if err != nil {
		return 0, err
	}
	defer r.Destroy()
	v, err := r.PrivilegeLevelFloor()
	if err != nil {
		return 0, fmt.Errorf("configfs-tsm privlevel_floor: %w", err)
	}
	return v, nil
}

func explainTSM(err error) error {
	// go-configfs-tsm formats some causes with %v, so match the text too.
	msg := err.Error()
	switch {
	case errors.Is(err, os.ErrPermission) || strings.Contains(msg, "permission denied"):
		return fmt.Errorf("configfs-tsm report: permission denied (run as root): %w", err)
	case notExist(err):
		return fmt.Errorf("configfs-tsm report interface missing (needs Linux ≥ 6.7 in a confidential guest): %w", err)
	}
	return fmt.Errorf("configfs-tsm report: %w", err)
}

func (p *configfsProvider) Name() string {
	if p.kind == quote.TDX {
		return TDX
	}
	return SEVSNP
}
func (p *configfsProvider) Kind() quote.Kind { return p.kind }
func (p *configfsProvider) Simulated() bool  { return false }

func (p *configfsProvider) Quote(ctx context.Context, reportData [64]byte) (*quote.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &report.Request{InBlob: reportData[:], GetAuxBlob: p.kind == quote.SEVSNP}
	if p.kind == quote.SEVSNP {
		req.Privilege = &report.Privilege{Level: p.vmpl}
	}
	var resp *report.Response
	err := retry(ctx, p.backoff, func() (bool, error) {
		var err error
		resp, err = report.Get(p.tsm, req)
		return isErrno(err, transientErrnos...), err
	})
	if err != nil {
		cause := ""
		if p.kind == quote.TDX && isErrno(err, transientErrnos...) {
			cause = ": the kernel gets TDX quotes from the host's Quote Generation Service (qgsd), which did not answer in time or failed: check it on the host"
		}
		return nil, fmt.Errorf("%s quote: %w%s", p.kind, explainTSM(err), cause)
	}
	if got := strings.TrimSpace(resp.Provider); got != tsmProviderName(p.kind) {
		return nil, fmt.Errorf("%s quote: configfs-tsm provider changed to %q", p.kind, got)
	}
	return checkHardwareQuote(p.kind, resp.OutBlob, resp.AuxBlob, reportData)
}

// checkHardwareQuote makes sure the hardware returned a well-formed quote
// of the expected kind that carries the requested report_data.
func checkHardwareQuote(k quote.Kind, raw, certTable []byte, reportData [64]byte) (*quote.Evidence, error) {
	got, err := quote.Detect(raw)
	if err != nil || got != k {
		return nil, fmt.Errorf("%s quote: the TEE returned %d bytes that are not a %s quote: %v", k, len(raw), k, err)
	}
	if k == quote.TDX {
		if _, err := quote.ParseTDX(raw); err != nil {
			return nil, fmt.Errorf("tdx quote: malformed quote from the TEE: %w", err)
		}
	}
	rd, err := quote.ReportData(raw)
	if err != nil {
		return nil, err
	}
	if string(rd) != string(reportData[:]) {
		return nil, fmt.Errorf("%s quote: the TEE returned a quote for other report_data", k)
	}
	q := &quote.Evidence{Kind: k, Raw: raw}
	if len(certTable) > 0 {
		q.CertTable = certTable
	}
	return q, nil
}

// sevDeviceProvider uses the legacy /dev/sev-guest ioctl interface through
// go-sev-guest's client, keeping the certificate table the host supplies.
type sevDeviceProvider struct {
	path    string
	open    func() (sevclient.Device, error)
	vmpl    int
	backoff time.Duration
}

// Sealer implements Sealing.
func (p *sevDeviceProvider) Sealer(ev *quote.Evidence) (keystore.Sealer, error) {
	return snpHardwareSealer(p.open, ev)
}

func (p *sevDeviceProvider) Name() string     { return SEVSNP }
func (p *sevDeviceProvider) Kind() quote.Kind { return quote.SEVSNP }
func (p *sevDeviceProvider) Simulated() bool  { return false }

func (p *sevDeviceProvider) Quote(ctx context.Context, reportData [64]byte) (*quote.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := p.open()
	if err != nil {
		return nil, openError("sev-snp", p.path, err)
	}
	defer d.Close()
	var raw, certs []byte
	err = retry(ctx, p.backoff, func() (bool, error) {
		var err error
		raw, certs, err = sevclient.GetRawExtendedReportAtVmpl(d, reportData, p.vmpl)
		return isErrno(err, transientErrnos...), err
	})
	if err != nil {
		if isErrno(err, syscall.EINVAL) {
			return nil, fmt.Errorf("sev-snp: get extended report at VMPL %d: %w (a guest above VMPL0, under an SVSM, must ask at its own VMPL: --vmpl)", p.vmpl, err)
		}
		return nil, fmt.Errorf("sev-snp: get extended report at VMPL %d: %w", p.vmpl, err)
	}
	return checkHardwareQuote(quote.SEVSNP, raw, certs, reportData)
}

// openError explains a TEE device that could not be opened.
func openError(tee, path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: open %s: permission denied (run as root): %w", tee, path, err)
	}
	return fmt.Errorf("%s: open %s: %w", tee, path, err)
}
