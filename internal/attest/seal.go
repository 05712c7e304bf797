package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	sevclient "github.com/google/go-sev-guest/client"

	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/quote"
)

// Sealing is implemented by providers whose TEE seals private keys at
// rest: SEV-SNP (a key the AMD security processor derives) and both
// simulators. TDX has no sealing key.
type Sealing interface {
	// Sealer returns the sealer of this TEE; ev is a quote it just made,
	// whose TCB and VMPL a new seal records.
	Sealer(ev *quote.Evidence) (keystore.Sealer, error)
}

// IdentityOf returns the workload identity a quote from provider p
// measures: for TDX MR_TD and RTMR0-3, for SEV-SNP MEASUREMENT, HOST_DATA,
// FAMILY_ID and IMAGE_ID, under the provider's name (so that a simulator's
// keys never pass for hardware's).
func IdentityOf(p Provider, ev *quote.Evidence) (keystore.Identity, error) {
	_, f, err := quote.Parse(ev.Raw)
	if err != nil {
		return keystore.Identity{}, fmt.Errorf("workload identity: %w", err)
	}
	names := []string{"mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}
	if ev.Kind == quote.SEVSNP {
		names = []string{"measurement", "host_data", "family_id", "image_id"}
	}
	id := keystore.Identity{TEE: p.Name(), Fields: map[string]string{}}
	for _, n := range names {
		id.Fields[n] = fmt.Sprint(f[n])
	}
	return id, nil
}

// snpSealer derives SEV-SNP sealing keys with MSG_KEY_REQ
// (SNP_GET_DERIVED_KEY on /dev/sev-guest): rooted in the chip's VCEK, so
// another chip derives another key, and mixing in the launch measurement
// and the guest policy, so another image does too. The TCB version mixed
// in is the one committed when the keys were sealed, recorded with them:
// firmware updates raise the committed TCB, and the security processor
// still derives keys for any TCB version up to it, so an update does not
// lock the keys out, while a rollback below the recorded version does.
type snpSealer struct {
	open func() (sevclient.Device, error)
	tcb  uint64
	vmpl uint32
}

type snpSealParams struct {
	TCBVersion uint64 `json:"tcb_version"`
	VMPL       uint32 `json:"vmpl"`
}

func (s *snpSealer) SealParams() ([]byte, error) {
	return json.Marshal(snpSealParams{TCBVersion: s.tcb, VMPL: s.vmpl})
}

func (s *snpSealer) SealingKey(params []byte) ([]byte, error) {
	var p snpSealParams
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("sev-snp sealing parameters: %w", err)
	}
	d, err := s.open()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sev-snp sealing key: /dev/sev-guest is missing (configfs-tsm makes reports but derives no keys; load the sev-guest driver): %w", err)
		}
		return nil, fmt.Errorf("sev-snp sealing key: open /dev/sev-guest: %w", err)
	}
	defer d.Close()
	resp, err := sevclient.GetDerivedKeyAcknowledgingItsLimitations(d, &sevclient.SnpDerivedKeyReq{
		UseVCEK:          true,
		GuestFieldSelect: sevclient.GuestFieldSelect{Measurement: true, GuestPolicy: true, TCBVersion: true},
		Vmpl:             p.VMPL,
		TCBVersion:       p.TCBVersion,
	})
	if err != nil {
		return nil, fmt.Errorf("sev-snp sealing key: %w", err)
	}
	return append([]byte(nil), resp.Data[:]...), nil
}

// snpHardwareSealer is the sealer of a SEV-SNP provider.
func snpHardwareSealer(open func() (sevclient.Device, error), ev *quote.Evidence) (keystore.Sealer, error) {
	r, err := quote.ParseSNP(ev.Raw)
	if err != nil {
		return nil, err
	}
	return &snpSealer{open: open, tcb: r.GetCommittedTcb(), vmpl: r.GetVmpl()}, nil
}
