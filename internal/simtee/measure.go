// Package simtee is teesign's simulated TEE: TDX v4 quotes and SEV-SNP
// reports in the real binary layouts, signed by certificate chains made on
// first use and kept in the state directory. Nothing about it is
// hardware-backed: verifiers trust it only when given its root explicitly.
package simtee

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"

	"github.com/teesign/teesign/validate"
)

// MeasurementSize is the size of a TDX MR or RTMR and of a SEV-SNP measurement.
const MeasurementSize = 48

// label returns SHA-384("teesign-sim/" + name): the fixed, documented value
// of a simulated measurement.
func label(name string) []byte {
	h := sha512.Sum384([]byte("teesign-sim/" + name))
	return h[:]
}

// TDX body values of the simulated TD. MR_SEAM, MR_TD and RTMR0-2 are
// SHA-384 of "teesign-sim/<field>"; RTMR3 comes from the workload.
var (
	simTeeTcbSvn    = mustHex("07010300000000000000000000000000")
	simTdAttributes = mustHex("0000001000000000") // SEPT_VE_DISABLE; DEBUG (bit 0) clear
	simXfam         = mustHex("e702060000000000")
)

// TDXMeasurements returns the simulated TD's fixed measurements and the
// RTMR3 of the given workload, as lowercase hex under the field names of
// `teesign quote inspect`.
func TDXMeasurements(workload [][]byte) map[string]string {
	return TDXImageMeasurements(workload, "")
}

// imageLabel is label for the documented image (""), and
// SHA-384("teesign-sim/<image>/<name>") for another simulated image.
func imageLabel(image, name string) []byte {
	if image == "" {
		return label(name)
	}
	return label(image + "/" + name)
}

// TDXImageMeasurements is TDXMeasurements for a TD booted from another
// simulated image: its MR_TD and RTMR0-2 differ.
func TDXImageMeasurements(workload [][]byte, image string) map[string]string {
	return map[string]string{
		"tee_tcb_svn":   hex.EncodeToString(simTeeTcbSvn),
		"mr_seam":       hex.EncodeToString(label("mr_seam")),
		"td_attributes": hex.EncodeToString(simTdAttributes),
		"xfam":          hex.EncodeToString(simXfam),
		"mr_td":         hex.EncodeToString(imageLabel(image, "mr_td")),
		"rtmr0":         hex.EncodeToString(imageLabel(image, "rtmr0")),
		"rtmr1":         hex.EncodeToString(imageLabel(image, "rtmr1")),
		"rtmr2":         hex.EncodeToString(imageLabel(image, "rtmr2")),
		"rtmr3":         hex.EncodeToString(validate.ComposeRTMR3(workload...)),
	}
}

// SNPMeasurements returns the simulated SEV-SNP guest's measurement and
// host_data (SHA-256 of the workload's RTMR3-style digest, so that a
// verifier can pin the workload on SEV-SNP too).
func SNPMeasurements(workload [][]byte) map[string]string {
	return SNPImageMeasurements(workload, "")
}

// SNPImageMeasurements is SNPMeasurements for a guest launched from
// another simulated image: its measurement differs.
func SNPImageMeasurements(workload [][]byte, image string) map[string]string {
	hd := sha256.Sum256(validate.ComposeRTMR3(workload...))
	return map[string]string{
		"measurement": hex.EncodeToString(imageLabel(image, "measurement")),
		"host_data":   hex.EncodeToString(hd[:]),
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
