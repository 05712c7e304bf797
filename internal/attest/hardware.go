package attest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

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
	return &configfsProvider{tsm: tsm, kind: k}, nil
}

// probeProvider asks configfs-tsm which provider backs it, with a
// throw-away report request.
func probeProvider(tsm configfsi.Client) (string, error) {
	resp, err := report.Get(tsm, &report.Request{InBlob: make([]byte, 64)})
	if err != nil {
		return "", explainTSM(err)
	}
	return strings.TrimSpace(resp.Provider), nil
}

func explainTSM(err error) error {
	// go-configfs-tsm formats some causes with %v, so match the text too.
	msg := err.Error()
	switch {
	case errors.Is(err, os.ErrPermission) || strings.Contains(msg, "permission denied"):
		return fmt.Errorf("configfs-tsm report: permission denied (run as root): %w", err)
	case errors.Is(err, os.ErrNotExist) || strings.Contains(msg, "no such file"):
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
	resp, err := report.Get(p.tsm, &report.Request{InBlob: reportData[:], GetAuxBlob: p.kind == quote.SEVSNP})
	if err != nil {
		return nil, fmt.Errorf("%s quote: %w", p.kind, explainTSM(err))
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
	path string
	open func() (sevclient.Device, error)
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
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("sev-snp: open %s: permission denied (run as root): %w", p.path, err)
		}
		return nil, fmt.Errorf("sev-snp: open %s: %w", p.path, err)
	}
	defer d.Close()
	raw, certs, err := sevclient.GetRawExtendedReport(d, reportData)
	if err != nil {
		return nil, fmt.Errorf("sev-snp: get extended report: %w", err)
	}
	return checkHardwareQuote(quote.SEVSNP, raw, certs, reportData)
}
