// Package simtee is teesign's simulated TEE: TDX v4 quotes and SEV-SNP
// reports in the real binary layouts, signed by certificate chains made on
// first use and kept in the state directory. Nothing about it is
// hardware-backed: verifiers trust it only when given its root explicitly.
//
// Its workload measurements follow SecretVM's scheme (package workload),
// against a simulated registry of one build, so that verifying a simulated
// quote takes the same path as verifying a real SecretVM.
package simtee

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"

	"github.com/teesign/teesign/workload"
)

// MeasurementSize is the size of a TDX MR or RTMR and of a SEV-SNP measurement.
const MeasurementSize = 48

// The simulated build, as its registry entries name it.
const (
	SimTemplate = "small"
	SimEnv      = "sim"
	SimVersion  = "v0.0.0-sim"
)

// label returns SHA-384("teesign-sim/" + name): the fixed, documented value
// of a simulated measurement.
func label(name string) []byte {
	h := sha512.Sum384([]byte("teesign-sim/" + name))
	return h[:]
}

// imageLabel is label for the documented image (""), and
// SHA-384("teesign-sim/<image>/<name>") for another simulated image.
func imageLabel(image, name string) []byte {
	if image == "" {
		return label(name)
	}
	return label(image + "/" + name)
}

// imageHash is SHA-256 of the same text: the simulated image's 32-byte
// digests (rootfs_data, kernel, initrd and rootfs hashes).
func imageHash(image, name string) []byte {
	s := "teesign-sim/" + name
	if image != "" {
		s = "teesign-sim/" + image + "/" + name
	}
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TDX body values of the simulated TD. MR_SEAM, MR_TD and RTMR0-2 are
// SHA-384 of "teesign-sim/<field>"; RTMR3 comes from the workload.
var (
	simTeeTcbSvn    = mustHex("07010300000000000000000000000000")
	simTdAttributes = mustHex("0000001000000000") // SEPT_VE_DISABLE; DEBUG (bit 0) clear
	simXfam         = mustHex("e702060000000000")
)

// Registry returns the simulated registry for image ("" for the
// documented one): one TDX build and one SEV-SNP build, in SecretVM's
// formats, environment "sim", template "small", version v0.0.0-sim.
func Registry(image string) *workload.Registry {
	ver := SimVersion
	if image != "" {
		ver = "v0.0.0-" + image
		if len(ver) > 16 { // IMAGE_ID holds 16 bytes
			ver = ver[:16]
		}
	}
	h := hex.EncodeToString
	return &workload.Registry{
		Source: "the simulated registry",
		TDX: []workload.TDXBuild{{
			Template: SimTemplate, VMType: SimEnv, ArtifactsVersion: ver,
			MRTD: imageLabel(image, "mr_td"), RTMR0: imageLabel(image, "rtmr0"), RTMR1: imageLabel(image, "rtmr1"), RTMR2: imageLabel(image, "rtmr2"),
			RootfsData: imageHash(image, "rootfs_data"), HostID: "sim",
		}},
		SNP: []workload.SNPBuild{{
			VMType: SimEnv, ArtifactsVersion: ver, VCPUType: "EPYC",
			KernelHash: h(imageHash(image, "kernel")), InitrdHash: h(imageHash(image, "initrd")), RootfsHash: h(imageHash(image, "rootfs")),
			OVMFHash: h(imageLabel(image, "ovmf")), HashesTableGPA: 0x810000 + 0x60, ResetEIP: 0x80b004,
			Sections: []workload.Section{{GPA: 0x800000, Size: 0x9000, Type: 1}, {GPA: 0x80d000, Size: 0x1000, Type: 2}, {GPA: 0x80e000, Size: 0x1000, Type: 3}, {GPA: 0x810000, Size: 0x1000, Type: 0x10}, {GPA: 0x811000, Size: 0xf000, Type: 1}},
		}},
	}
}

// composeDigest is the workload's compose bytes: the files concatenated
// in order (one file, as on SecretVM, is just its bytes).
func composeBytes(workload [][]byte) []byte {
	var out []byte
	for _, w := range workload {
		out = append(out, w...)
	}
	return out
}

// TDXMeasurements returns the simulated TD's fixed measurements and the
// RTMR3 of the given workload, as lowercase hex under the field names of
// `teesign quote inspect`.
func TDXMeasurements(compose [][]byte) map[string]string {
	return TDXImageMeasurements(compose, "", nil)
}

// TDXImageMeasurements is TDXMeasurements for a TD booted from another
// simulated image (its MR_TD and RTMR0-2 differ) and, when dockerFiles is
// not nil, given a docker-files archive of that SHA-256.
func TDXImageMeasurements(compose [][]byte, image string, dockerFiles []byte) map[string]string {
	b := Registry(image).TDX[0]
	return map[string]string{
		"tee_tcb_svn":   hex.EncodeToString(simTeeTcbSvn),
		"mr_seam":       hex.EncodeToString(label("mr_seam")),
		"td_attributes": hex.EncodeToString(simTdAttributes),
		"xfam":          hex.EncodeToString(simXfam),
		"mr_td":         hex.EncodeToString(b.MRTD),
		"rtmr0":         hex.EncodeToString(b.RTMR0),
		"rtmr1":         hex.EncodeToString(b.RTMR1),
		"rtmr2":         hex.EncodeToString(b.RTMR2),
		"rtmr3":         hex.EncodeToString(workload.ReplayRTMR3(composeBytes(compose), b.RootfsData, dockerFiles)),
	}
}

// Options shape a simulated TEE's workload.
type Options struct {
	// Workload is the bytes of each compose file, in order.
	Workload [][]byte
	// Image names the simulated image ("" for the documented one).
	Image string
	// DockerFilesSHA256 is the SHA-256 of the docker-files archive the VM
	// was given, or nil.
	DockerFilesSHA256 []byte
}

// SNPMeasurements returns the simulated SEV-SNP guest's MEASUREMENT (the
// launch digest of the simulated build with the workload's kernel command
// line), FAMILY_ID and IMAGE_ID, as SecretVM's guests carry them.
func SNPMeasurements(compose [][]byte) map[string]string {
	m, err := SNPImageMeasurements(compose, "", nil)
	if err != nil {
		panic(err) // the simulated build is fixed and valid
	}
	return m
}

// SNPImageMeasurements is SNPMeasurements for a guest launched from
// another simulated image and, when dockerFiles is not nil, given a
// docker-files archive of that SHA-256.
func SNPImageMeasurements(compose [][]byte, image string, dockerFiles []byte) (map[string]string, error) {
	b := Registry(image).SNP[0]
	cs := sha256.Sum256(composeBytes(compose))
	d, err := workload.LaunchDigest(b, 1, workload.Cmdline(cs[:], b.RootfsHash, dockerFiles))
	if err != nil {
		return nil, fmt.Errorf("sim-sev-snp: launch digest: %w", err)
	}
	return map[string]string{
		"measurement": hex.EncodeToString(d),
		"host_data":   hex.EncodeToString(make([]byte, 32)),
		"family_id":   hex.EncodeToString(workload.FamilyID(SimEnv, SimTemplate)),
		"image_id":    hex.EncodeToString(workload.ImageID(b.ArtifactsVersion)),
	}, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
