package attest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	sevclient "github.com/google/go-sev-guest/client"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/teesign/teesign/internal/attest"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
)

// fakeTDX is a configfs-tsm whose provider is tdx_guest and whose outblob
// is a quote (made by the simulated TEE) for the inblob written.
func fakeTDX(t *testing.T, provider string) configfsi.Client {
	t.Helper()
	sim, err := simtee.NewTDX(t.TempDir(), simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub := faketsm.Report611(0)
	base := sub.ReadAttr
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "outblob":
			in := e.InAttrs["inblob"].Value
			if len(in) != 64 {
				return nil, syscall.EINVAL
			}
			var rd [64]byte
			copy(rd[:], in)
			ev, err := sim.Quote(context.Background(), rd)
			if err != nil {
				return nil, err
			}
			return ev.Raw, nil
		}
		return base(e, attr)
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

func TestConfigfsTDX(t *testing.T) {
	tsm := fakeTDX(t, "tdx_guest")
	for _, name := range []string{attest.TDX, attest.Auto} {
		p, err := attest.New(context.Background(), name, attest.Options{TSM: tsm, SEVGuestDevice: "/nonexistent"})
		if err != nil {
			t.Fatal(err)
		}
		if p.Name() != attest.TDX || p.Simulated() || p.Kind() != quote.TDX {
			t.Fatalf("%s: got provider %s simulated=%v", name, p.Name(), p.Simulated())
		}
		var rd [64]byte
		rd[0], rd[63] = 7, 9
		ev, err := p.Quote(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := quote.ReportData(ev.Raw)
		if string(got) != string(rd[:]) {
			t.Fatal("quote carries other report_data")
		}
	}
}

func TestConfigfsWrongProvider(t *testing.T) {
	tsm := fakeTDX(t, "sev_guest")
	_, err := attest.New(context.Background(), attest.TDX, attest.Options{TSM: tsm})
	if err == nil || !strings.Contains(err.Error(), `"sev_guest", not "tdx_guest"`) {
		t.Fatalf("wrong provider: %v", err)
	}
	// The fake answers with a TDX quote although it claims sev_guest: the
	// SEV-SNP provider must refuse it.
	p, err := attest.New(context.Background(), attest.SEVSNP, attest.Options{TSM: tsm, SEVGuestDevice: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Quote(context.Background(), [64]byte{}); err == nil {
		t.Fatal("a TDX quote was accepted as a SEV-SNP report")
	}
}

type deniedTSM struct{ configfsi.Client }

func (deniedTSM) MkdirTemp(string, string) (string, error) { return "", os.ErrPermission }

// absentTSM is a kernel without configfs-tsm.
type absentTSM struct{ deniedTSM }

func (absentTSM) MkdirTemp(string, string) (string, error) { return "", os.ErrNotExist }

func TestConfigfsErrorsExplain(t *testing.T) {
	_, err := attest.New(context.Background(), attest.TDX, attest.Options{TSM: deniedTSM{}})
	if err == nil || !strings.Contains(err.Error(), "run as root") {
		t.Fatalf("permission error: %v", err)
	}
}

// --tee auto never chooses a simulator: with no TEE it stops and names
// the simulator flags.
func TestAutoNeverSimulates(t *testing.T) {
	dir := t.TempDir()
	p, err := attest.New(context.Background(), attest.Auto, attest.Options{StateDir: dir, TSM: absentTSM{}, SEVGuestDevice: "/nonexistent", TDXGuestDevice: "/nonexistent", DMISysVendor: "/nonexistent"})
	if err == nil || p != nil || !strings.Contains(err.Error(), "--tee sim-tdx") || !strings.Contains(err.Error(), "--tee sim-sev-snp") {
		t.Fatalf("auto without a TEE: %v %v", p, err)
	}
	// An Azure VM (Microsoft's DMI vendor) without a usable TEE device: the
	// error says why teesign cannot bind keys there.
	vendor := filepath.Join(dir, "sys_vendor")
	os.WriteFile(vendor, []byte("Microsoft Corporation\n"), 0o644)
	p, err = attest.New(context.Background(), attest.Auto, attest.Options{StateDir: t.TempDir(), TSM: absentTSM{}, SEVGuestDevice: "/nonexistent", TDXGuestDevice: "/nonexistent", DMISysVendor: vendor})
	if err == nil || p != nil || !strings.Contains(err.Error(), "paravisor") || !strings.Contains(err.Error(), "not supported yet") {
		t.Fatalf("auto on Azure: %v %v", p, err)
	}
	os.Remove(vendor)
	// configfs-tsm there but unreadable is a sign of a TEE: an error that
	// says so, and still no simulator.
	p, err = attest.New(context.Background(), attest.Auto, attest.Options{StateDir: dir, TSM: deniedTSM{}, SEVGuestDevice: "/nonexistent", TDXGuestDevice: "/nonexistent", DMISysVendor: "/nonexistent"})
	if err == nil || p != nil || !strings.Contains(err.Error(), "may be a TEE") || !strings.Contains(err.Error(), "run as root") {
		t.Fatalf("auto with an unreadable configfs-tsm: %v %v", p, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("auto without a TEE made a simulated chain: %v", entries)
	}
	if _, err := attest.New(context.Background(), "sgx", attest.Options{}); err == nil {
		t.Fatal("unknown TEE accepted")
	}
}

// SEV-SNP sealing on go-sev-guest's fake device: the key comes from
// SNP_GET_DERIVED_KEY rooted in the VCEK, mixing the measurement, the
// guest policy and the TCB version recorded at sealing; sealed files hold
// no private key; another chip's key opens nothing.
func TestSEVSealingOnFakeDevice(t *testing.T) {
	var rd [64]byte
	copy(rd[:], "teesign sealing")
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: rd[:]})
	binary.LittleEndian.PutUint64(raw[0x1E0:], 0x7300000000000003) // COMMITTED_TCB
	dev, err := sevtest.TcDevice([]sevtest.TestCase{{Name: "seal", Input: rd, Output: raw}}, &sevtest.DeviceOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// Root key VCEK (0), fields measurement|policy|TCB version (0b101001),
	// VMPL 0, guest SVN 0, TCB version as committed.
	req := "0 29 0 0 7300000000000003"
	dev.Keys = map[string][]byte{req: bytes.Repeat([]byte{0x5e}, 32)}
	open := func() (sevclient.Device, error) { return dev, dev.Open("/dev/sev-guest") }
	p, err := attest.New(context.Background(), attest.SEVSNP, attest.Options{TSM: deniedTSM{}, OpenSEVDevice: open})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Quote(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := p.(attest.Sealing).Sealer(ev)
	if err != nil || sealer == nil {
		t.Fatalf("sealer: %v", err)
	}
	state := filepath.Join(t.TempDir(), "state")
	store, err := keystore.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	priv := map[keys.Alg]*keys.PrivateKey{}
	for _, alg := range keys.Algs() {
		priv[alg], _ = keys.Generate(alg)
	}
	id := keystore.Identity{TEE: attest.SEVSNP, Fields: map[string]string{"measurement": "00"}}
	rec, err := store.Create(id, priv, sealer)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.SealParams) != `{"tcb_version":8286623314361712643,"vmpl":0}` {
		t.Fatalf("seal parameters %s", rec.SealParams)
	}
	for _, alg := range keys.Algs() {
		data, _ := os.ReadFile(store.KeyPath(alg, true))
		if bytes.Contains(data, priv[alg].MarshalPEM()) || bytes.Contains(data, []byte("PRIVATE")) {
			t.Fatalf("%s: the sealed file holds the key", alg)
		}
	}
	got, err := store.Load(rec, sealer)
	if err != nil || !got[keys.Ed25519].Public().Equal(priv[keys.Ed25519].Public()) {
		t.Fatalf("unseal: %v", err)
	}
	// Another chip derives another key: nothing opens.
	dev.Keys[req] = bytes.Repeat([]byte{0x77}, 32)
	if _, err := store.Load(rec, sealer); err == nil || !strings.Contains(err.Error(), "cannot be opened") {
		t.Fatalf("another chip's key: %v", err)
	}
}

// The /dev/sev-guest path, on go-sev-guest's fake device.
func TestSEVGuestDevice(t *testing.T) {
	var rd [64]byte
	copy(rd[:], "teesign report data")
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: rd[:]})
	dev, err := sevtest.TcDevice([]sevtest.TestCase{{Name: "teesign", Input: rd, Output: raw}}, &sevtest.DeviceOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	open := func() (sevclient.Device, error) { return dev, dev.Open("/dev/sev-guest") }
	for _, name := range []string{attest.SEVSNP, attest.Auto} {
		p, err := attest.New(context.Background(), name, attest.Options{TSM: deniedTSM{}, OpenSEVDevice: open})
		if err != nil {
			t.Fatal(err)
		}
		if p.Name() != attest.SEVSNP || p.Simulated() {
			t.Fatalf("%s: got %s", name, p.Name())
		}
		ev, err := p.Quote(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := quote.ReportData(ev.Raw); string(got) != string(rd[:]) || len(ev.CertTable) == 0 {
			t.Fatalf("%s: report_data %x, cert table %d bytes", name, got, len(ev.CertTable))
		}
		// Other report_data than the device returns: refused.
		if _, err := p.Quote(context.Background(), [64]byte{1}); err == nil {
			t.Fatalf("%s: a report for other report_data was accepted", name)
		}
	}
}

// configfs-tsm with provider sev_guest: the report and its certificate
// table (auxblob).
func TestConfigfsSEVSNP(t *testing.T) {
	sim, err := simtee.NewSNP(t.TempDir(), simtee.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A guest at VMPL2 (under an SVSM): reports must be asked at VMPL2.
	// The first two attempts find the firmware busy.
	sub := faketsm.Report611(2)
	base := sub.ReadAttr
	var privlevels []string
	busy := 2
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		var rd [64]byte
		copy(rd[:], e.InAttrs["inblob"].Value)
		switch attr {
		case "provider":
			return []byte("sev_guest\n"), nil
		case "outblob", "auxblob":
			if attr == "outblob" {
				privlevels = append(privlevels, strings.TrimSpace(string(e.InAttrs["privlevel"].Value)))
				if busy > 0 {
					busy--
					return nil, syscall.EBUSY
				}
			}
			ev, err := sim.Quote(context.Background(), rd)
			if err != nil {
				return nil, err
			}
			if attr == "auxblob" {
				return ev.CertTable, nil
			}
			return ev.Raw, nil
		}
		return base(e, attr)
	}
	tsm := &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
	for _, name := range []string{attest.SEVSNP, attest.Auto} {
		p, err := attest.New(context.Background(), name, attest.Options{TSM: tsm, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		var rd [64]byte
		rd[5] = 5
		ev, err := p.Quote(context.Background(), rd)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name() != attest.SEVSNP || ev.Kind != quote.SEVSNP || len(ev.CertTable) == 0 {
			t.Fatalf("%s: %s %s, cert table %d bytes", name, p.Name(), ev.Kind, len(ev.CertTable))
		}
	}
	if strings.Join(privlevels, ",") != "2,2,2,2" {
		t.Fatalf("reports asked at privlevels %v, want the floor, 2, every time (two busy, then one per provider)", privlevels)
	}
}

// Without TEE hardware (as on CI machines), asking for it explicitly is an
// error that says what is missing.
func TestHardwareAbsentIsExplained(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/config/tsm/report"); err == nil {
		t.Skip("this machine has configfs-tsm: the absent-hardware messages cannot be checked here")
	}
	_, err := attest.New(context.Background(), attest.TDX, attest.Options{})
	if err == nil || !strings.Contains(err.Error(), "configfs-tsm is not available") || !strings.Contains(err.Error(), "6.7") {
		t.Fatalf("tdx without hardware: %v", err)
	}
	_, err = attest.New(context.Background(), attest.SEVSNP, attest.Options{SEVGuestDevice: "/nonexistent/sev-guest"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/sev-guest does not exist") {
		t.Fatalf("sev-snp without hardware: %v", err)
	}
}

// A configfs-tsm TDX quote that keeps failing in a way that may pass (EIO,
// ETIMEDOUT, EBUSY: the host's QGS down, slow or busy) is asked for again,
// then reported naming the QGS; --tee auto never falls back to a
// simulator, and choosing the provider asks for no quote.
func TestConfigfsTransientFailures(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ETIMEDOUT, syscall.EBUSY} {
		sub := faketsm.Report611(0)
		base := sub.ReadAttr
		outblobs := 0
		sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "provider":
				return []byte("tdx_guest\n"), nil
			case "outblob":
				outblobs++
				return nil, errno
			}
			return base(e, attr)
		}
		tsm := &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
		dir := t.TempDir()
		p, err := attest.New(context.Background(), attest.Auto, attest.Options{StateDir: dir, TSM: tsm, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if outblobs != 0 {
			t.Fatalf("%v: choosing the provider generated %d quotes", errno, outblobs)
		}
		if p.Simulated() || p.Name() != attest.TDX {
			t.Fatalf("%v: provider %s", errno, p.Name())
		}
		_, err = p.Quote(context.Background(), [64]byte{})
		if err == nil || !strings.Contains(err.Error(), "tried 4 times") || !strings.Contains(err.Error(), "Quote Generation Service") || outblobs != 4 {
			t.Fatalf("%v: %d attempts, %v", errno, outblobs, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%v: a simulated chain appeared: %v", errno, entries)
		}
	}
}
