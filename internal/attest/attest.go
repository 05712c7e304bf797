// Package attest gets attestation quotes that bind 64 bytes of report_data:
// from Intel TDX or AMD SEV-SNP hardware through configfs-tsm (or
// /dev/sev-guest), or from the simulated TEE of package simtee.
package attest

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	sevclient "github.com/google/go-sev-guest/client"

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
}

// New returns the provider called name.
func New(ctx context.Context, name string, o Options) (Provider, error) {
	if name == "" {
		name = Auto
	}
	switch name {
	case TDX:
		return newConfigfs(o, quote.TDX)
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
			return &sevDeviceProvider{path: dev, open: o.OpenSEVDevice}, nil
		}
		if fileExists(dev) {
			return &sevDeviceProvider{path: dev, open: func() (sevclient.Device, error) { return sevclient.OpenDevice() }}, nil
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

func detect(ctx context.Context, o Options) (Provider, error) {
	if tsm, err := tsmClient(o); err == nil {
		switch provider, _ := probeProvider(tsm); provider {
		case "tdx_guest":
			return New(ctx, TDX, o)
		case "sev_guest":
			return New(ctx, SEVSNP, o)
		}
	}
	if o.OpenSEVDevice != nil || fileExists(sevDevice(o)) {
		return New(ctx, SEVSNP, o)
	}
	return nil, errors.New("--tee auto found no TEE: no configfs-tsm provider (tdx_guest or sev_guest under /sys/kernel/config/tsm/report) and no /dev/sev-guest. " +
		"On a TDX or SEV-SNP guest, mount configfs (mount -t configfs none /sys/kernel/config) and run as root, or name the TEE (--tee tdx, --tee sev-snp). " +
		"teesign never chooses a simulator by itself: to run without TEE hardware, name one (--tee sim-tdx or --tee sim-sev-snp)")
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
