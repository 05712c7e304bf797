// Package attest gets attestation quotes that bind 64 bytes of report_data:
// from Intel TDX or AMD SEV-SNP hardware through configfs-tsm, the TDX
// guest device and the host's Quote Generation Service (SecretVM's TDX
// images), or /dev/sev-guest; or from the simulated TEE of package simtee.
// Which hardware is there is found without asking for a quote, and a
// machine that shows any sign of a TEE never gets a simulator.
package attest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	sevclient "github.com/google/go-sev-guest/client"
	tdxclient "github.com/google/go-tdx-guest/client"

	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
)

// Provider names accepted by New (the --tee flag).
const (
	Auto      = "auto"
	TDX       = "tdx"
	SEVSNP    = "sev-snp"
	SimTDX    = "sim-tdx"
	SimSEVSNP = "sim-sev-snp"
)

// Names lists the accepted provider names.
func Names() []string { return []string{Auto, TDX, SEVSNP, SimTDX, SimSEVSNP} }

// Provider gets quotes from one TEE.
type Provider interface {
	// Name is the provider's name, as passed to New (never "auto").
	Name() string
	// Kind is the format of the quotes it makes.
	Kind() quote.Kind
	// Simulated reports whether quotes are signed by a simulated chain
	// rather than hardware.
	Simulated() bool
	// Quote returns a quote whose report_data is reportData.
	Quote(ctx context.Context, reportData [64]byte) (*quote.Evidence, error)
}

// Options configure New.
type Options struct {
	// StateDir is the locked state directory; simulated providers keep
	// their certificate chain there.
	StateDir string
	// Workload is the bytes of each compose file, in order: the simulated
	// TDX provider extends RTMR3 with them.
	Workload [][]byte
	// TSM is the configfs-tsm client; nil means the kernel's.
	TSM configfsi.Client
	// SEVGuestDevice is the legacy SEV-SNP device path; "" means /dev/sev-guest.
	SEVGuestDevice string
	// OpenSEVDevice opens the legacy SEV-SNP device; nil means
	// go-sev-guest's client.OpenDevice (tests pass its fake device). The
	// device also derives SEV-SNP sealing keys.
	OpenSEVDevice func() (sevclient.Device, error)
	// SimImage names the simulated image the simulators boot: "" is the
	// documented one; another name gives other launch measurements (MRTD
	// and RTMR0-2, or MEASUREMENT), as booting another image would.
	SimImage string
	// DockerFilesSHA256 is the SHA-256 of the docker-files archive given
	// to the VM (provision --docker-files): the simulators measure it as
	// SecretVM does.
	DockerFilesSHA256 []byte
	// TDXGuestDevice is the TDX guest device; "" means whichever of
	// /dev/tdx_guest and /dev/tdx-guest exists.
	TDXGuestDevice string
	// OpenTDXDevice opens the TDX guest device; nil means go-tdx-guest's
	// LinuxDevice (tests pass a fake).
	OpenTDXDevice func() (tdxclient.Device, error)
	// QGS says how to reach the host's Quote Generation Service, for TDX
	// guests without a configfs-tsm TDX provider.
	QGS QGSOptions
	// VMPL is the SEV-SNP VMPL to ask reports at through /dev/sev-guest
	// (configfs-tsm uses the kernel's privlevel_floor, the guest's own).
	VMPL int
	// DMISysVendor is the DMI system vendor file; "" means
	// /sys/class/dmi/id/sys_vendor. It tells an Azure VM.
	DMISysVendor string
	// RetryBackoff is the first wait before asking again for a quote
	// that failed in a way that may pass (default 1 s, doubled each time).
	RetryBackoff time.Duration
}

// New returns the provider called name.
func New(ctx context.Context, name string, o Options) (Provider, error) {
	if name == "" {
		name = Auto
	}
	switch name {
	case TDX:
		p, err := newConfigfs(o, quote.TDX)
		if err == nil {
			return p, nil
		}
		if dev := tdxDevice(o); dev != "" {
			return newQGS(o, dev)
		}
		return nil, fmt.Errorf("%w; and there is no TDX guest device (%s)", err, strings.Join(tdxDevices[:], ", "))
	case SEVSNP:
		p, err := newConfigfs(o, quote.SEVSNP)
		if err == nil {
			p.openDev = o.OpenSEVDevice
			if p.openDev == nil {
				p.openDev = func() (sevclient.Device, error) { return sevclient.OpenDevice() }
			}
			return p, nil
		}
		dev := sevDevice(o)
		if o.OpenSEVDevice != nil {
			return &sevDeviceProvider{path: dev, open: o.OpenSEVDevice, vmpl: o.VMPL, backoff: o.RetryBackoff}, nil
		}
		if fileExists(dev) {
			return &sevDeviceProvider{path: dev, open: func() (sevclient.Device, error) { return sevclient.OpenDevice() }, vmpl: o.VMPL, backoff: o.RetryBackoff}, nil
		}
		return nil, fmt.Errorf("%w; and %s does not exist", err, dev)
	case SimTDX:
		p, err := simtee.NewTDX(o.StateDir, simtee.Options{Workload: o.Workload, Image: o.SimImage, DockerFilesSHA256: o.DockerFilesSHA256})
		if err != nil {
			return nil, err
		}
		return &simProvider{Provider: p, sealer: p}, nil
	case SimSEVSNP:
		p, err := simtee.NewSNP(o.StateDir, simtee.Options{Workload: o.Workload, Image: o.SimImage, DockerFilesSHA256: o.DockerFilesSHA256})
		if err != nil {
			return nil, err
		}
		return &simProvider{Provider: p, sealer: p}, nil
	case Auto:
		return detect(ctx, o)
	}
	return nil, fmt.Errorf("unknown TEE %q: use one of auto, tdx, sev-snp, sim-tdx, sim-sev-snp", name)
}

// simProvider is a simulator, which seals.
type simProvider struct {
	Provider
	sealer keystore.Sealer
}

func (s *simProvider) Sealer(*quote.Evidence) (keystore.Sealer, error) { return s.sealer, nil }

// detect finds the TEE from what the kernel offers, without asking for a
// quote: configfs-tsm's provider, the TDX guest device, /dev/sev-guest.
func detect(ctx context.Context, o Options) (Provider, error) {
	var tsmErr error
	if tsm, err := tsmClient(o); err == nil {
		provider, err := probeProvider(tsm)
		switch provider {
		case "tdx_guest":
			return New(ctx, TDX, o)
		case "sev_guest":
			return New(ctx, SEVSNP, o)
		}
		tsmErr = err
	}
	if tdxDevice(o) != "" {
		return New(ctx, TDX, o)
	}
	if o.OpenSEVDevice != nil || fileExists(sevDevice(o)) {
		return New(ctx, SEVSNP, o)
	}
	if tsmErr != nil && !notExist(tsmErr) {
		return nil, fmt.Errorf("--tee auto: configfs-tsm is there but could not be read, so this may be a TEE: %w; name the TEE (--tee tdx, --tee sev-snp) once fixed", tsmErr)
	}
	if azure(o) {
		return nil, errors.New("--tee auto: this is a Microsoft Azure VM with no TEE device teesign can use. On an Azure confidential VM the paravisor, " +
			"not the guest, writes the hardware report's report_data (it binds the vTPM's runtime claims there), so teesign cannot bind its keys into a quote; " +
			"binding through the vTPM's runtime claims is not supported yet. teesign does not run a simulator in its place: to run without TEE hardware, name one (--tee sim-tdx or --tee sim-sev-snp)")
	}
	return nil, errors.New("--tee auto found no TEE: no configfs-tsm provider (tdx_guest or sev_guest under /sys/kernel/config/tsm/report), no TDX guest device (/dev/tdx_guest, /dev/tdx-guest) and no /dev/sev-guest. " +
		"On a TDX or SEV-SNP guest, mount configfs (mount -t configfs none /sys/kernel/config) and run as root, or name the TEE (--tee tdx, --tee sev-snp). " +
		"teesign never chooses a simulator by itself: to run without TEE hardware, name one (--tee sim-tdx or --tee sim-sev-snp)")
}

// azure reports whether the DMI system vendor is Microsoft's (Hyper-V).
func azure(o Options) bool {
	path := o.DMISysVendor
	if path == "" {
		path = "/sys/class/dmi/id/sys_vendor"
	}
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == "Microsoft Corporation"
}

// notExist reports a missing file, also where go-configfs-tsm formats the
// cause with %v.
func notExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), os.ErrNotExist.Error()) || strings.Contains(err.Error(), "no such file")
}

// tdxDevice is the TDX guest device that exists, or "".
func tdxDevice(o Options) string {
	if o.TDXGuestDevice != "" {
		if o.OpenTDXDevice != nil || fileExists(o.TDXGuestDevice) {
			return o.TDXGuestDevice
		}
		return ""
	}
	for _, d := range tdxDevices {
		if fileExists(d) {
			return d
		}
	}
	return ""
}

func sevDevice(o Options) string {
	if o.SEVGuestDevice != "" {
		return o.SEVGuestDevice
	}
	return "/dev/sev-guest"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func tsmClient(o Options) (configfsi.Client, error) {
	if o.TSM != nil {
		return o.TSM, nil
	}
	c, err := linuxtsm.MakeClient()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("configfs-tsm is not available (%s/report is missing): this needs Linux ≥ 6.7 in a TDX or SEV-SNP guest, with configfs mounted (mount -t configfs none /sys/kernel/config): %w", configfsi.TsmPrefix, err)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("configfs-tsm: permission denied: run teesign as root (or give its user write access to %s/report): %w", configfsi.TsmPrefix, err)
		}
		return nil, fmt.Errorf("configfs-tsm: %w", err)
	}
	return c, nil
}
