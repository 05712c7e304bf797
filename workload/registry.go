package workload

import (
	"bytes"
	"embed"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-json-experiment/json"

	"github.com/teesign/teesign/internal/atomicfile"
)

// TDXBuild is one row of SecretVM's TDX registry (tdx.csv).
type TDXBuild struct {
	Template, VMType, ArtifactsVersion string
	MRTD, RTMR0, RTMR1, RTMR2          []byte
	// RootfsData is the image's root file system digest, the second
	// entry extended into RTMR3.
	RootfsData []byte
	HostID     string
}

// Section is an OVMF metadata section measured at launch.
type Section struct {
	GPA  uint64 `json:"gpa"`
	Size uint64 `json:"size"`
	// Type: 1 zero pages (SNP_SEC_MEM), 2 secrets page, 3 CPUID page,
	// 4 SVSM CAA, 0x10 kernel hashes page.
	Type int `json:"section_type"`
}

// SNPBuild is one entry of SecretVM's SEV-SNP registry (sev.json).
type SNPBuild struct {
	VMType           string    `json:"vm_type"`
	ArtifactsVersion string    `json:"artifacts_ver"`
	KernelHash       string    `json:"kernel_hash"`
	InitrdHash       string    `json:"initrd_hash"`
	RootfsHash       string    `json:"rootfs_hash"`
	VCPUType         string    `json:"vcpu_type"`
	OVMFHash         string    `json:"ovmf_hash"`
	HashesTableGPA   uint64    `json:"sev_hashes_table_gpa"`
	ResetEIP         uint32    `json:"sev_es_reset_eip"`
	Sections         []Section `json:"ovmf_sections"`
}

// Registry is a set of official builds.
type Registry struct {
	TDX []TDXBuild
	SNP []SNPBuild
	// Source says where the registry came from.
	Source string
}

// tdxColumns are tdx.csv's columns, in SecretVM's order.
var tdxColumns = []string{"template_name", "vm_type", "artifacts_ver", "mrtd", "rtmr0", "rtmr1", "rtmr2", "rootfs_data", "host_id"}

// ParseTDX reads tdx.csv: a header naming at least the columns
// template_name, vm_type, artifacts_ver, mrtd, rtmr0, rtmr1, rtmr2 and
// rootfs_data (host_id optional), then one build a row, hex fields in
// either case.
func ParseTDX(r io.Reader) ([]TDXBuild, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("tdx.csv: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	for _, c := range tdxColumns[:8] {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("tdx.csv: no %s column (want %s)", c, strings.Join(tdxColumns, ","))
		}
	}
	var out []TDXBuild
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tdx.csv: %w", err)
		}
		get := func(c string) string {
			if i, ok := col[c]; ok { // csv.Reader gives every record the header's length
				return strings.ToLower(strings.TrimSpace(rec[i]))
			}
			return ""
		}
		b := TDXBuild{Template: get("template_name"), VMType: get("vm_type"), ArtifactsVersion: get("artifacts_ver"), HostID: get("host_id")}
		for _, f := range []struct {
			name string
			dst  *[]byte
			size int
		}{{"mrtd", &b.MRTD, 48}, {"rtmr0", &b.RTMR0, 48}, {"rtmr1", &b.RTMR1, 48}, {"rtmr2", &b.RTMR2, 48}, {"rootfs_data", &b.RootfsData, 0}} {
			v, err := hex.DecodeString(strings.TrimPrefix(get(f.name), "0x"))
			if err != nil || (f.size > 0 && len(v) != f.size) || len(v) == 0 || len(v) > 48 {
				return nil, fmt.Errorf("tdx.csv line %d: %s is not hex of the right length", line, f.name)
			}
			*f.dst = v
		}
		out = append(out, b)
	}
}

// ParseSNP reads sev.json: a JSON array of builds.
func ParseSNP(data []byte) ([]SNPBuild, error) {
	var out []SNPBuild
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("sev.json: %w", err)
	}
	for i, b := range out {
		if _, err := hex.DecodeString(b.OVMFHash); err != nil || len(b.OVMFHash) != 96 {
			return nil, fmt.Errorf("sev.json entry %d (%s): ovmf_hash is not 48 bytes of hex", i, b.ArtifactsVersion)
		}
		if kh, err := hex.DecodeString(b.KernelHash); err != nil || len(kh) != 32 {
			return nil, fmt.Errorf("sev.json entry %d (%s): kernel_hash is not 32 bytes of hex", i, b.ArtifactsVersion)
		}
	}
	return out, nil
}

// Load reads a registry directory holding tdx.csv and sev.json (either
// may be missing, not both).
func Load(dir string) (*Registry, error) {
	return load(os.DirFS(dir), dir)
}

func load(fsys fs.FS, source string) (*Registry, error) {
	r := &Registry{Source: source}
	found := false
	if data, err := fs.ReadFile(fsys, "tdx.csv"); err == nil {
		if r.TDX, err = ParseTDX(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("registry %s: %w", source, err)
		}
		found = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("registry %s: %w", source, err)
	}
	if data, err := fs.ReadFile(fsys, "sev.json"); err == nil {
		if r.SNP, err = ParseSNP(data); err != nil {
			return nil, fmt.Errorf("registry %s: %w", source, err)
		}
		found = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("registry %s: %w", source, err)
	}
	if !found && source != embeddedSource {
		return nil, fmt.Errorf("registry %s: neither tdx.csv nor sev.json is there", source)
	}
	return r, nil
}

//go:embed registry
var embedded embed.FS

const embeddedSource = "the registry embedded in teesign"

// Embedded returns the registry built into teesign: the files of
// workload/registry/ (SecretVM's published tdx.csv and sev.json, with their
// source commit in its README). It may hold no builds; Empty says so.
func Embedded() (*Registry, error) {
	sub, err := fs.Sub(embedded, "registry")
	if err != nil {
		return nil, err
	}
	return load(sub, embeddedSource)
}

// Empty reports whether the registry has no build for the TEE ("tdx" or
// "sev-snp").
func (r *Registry) Empty(tee string) bool {
	if tee == "tdx" {
		return len(r.TDX) == 0
	}
	return len(r.SNP) == 0
}

// Files returns the registry as the contents of tdx.csv and sev.json, in
// SecretVM's formats.
func (r *Registry) Files() (tdxCSV, sevJSON []byte, err error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(tdxColumns)
	for _, t := range r.TDX {
		h := hex.EncodeToString
		w.Write([]string{t.Template, t.VMType, t.ArtifactsVersion, h(t.MRTD), h(t.RTMR0), h(t.RTMR1), h(t.RTMR2), h(t.RootfsData), t.HostID})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, nil, err
	}
	snp := r.SNP
	if snp == nil {
		snp = []SNPBuild{}
	}
	j, err := json.Marshal(snp, json.Deterministic(true))
	if err != nil {
		return nil, nil, err
	}
	return b.Bytes(), j, nil
}

// Write writes the registry as tdx.csv and sev.json into dir (mode 0600
// files, each replaced atomically), in SecretVM's formats.
func (r *Registry) Write(dir string) error {
	tdx, snp, err := r.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(dir, "tdx.csv"), tdx, 0o600); err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(dir, "sev.json"), snp, 0o600)
	return err
}
