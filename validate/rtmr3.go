package validate

import (
	"crypto/sha256"
	"crypto/sha512"
)

// ComposeRTMR3 returns the RTMR3 a SecretVM-style TD reports for its
// compose files: from 48 zero bytes, for each file in order,
// RTMR3 = SHA-384(RTMR3 ‖ SHA-256(file) padded with zeros to 48 bytes).
// Pin it in a policy to pin the workload.
func ComposeRTMR3(files ...[]byte) []byte {
	rtmr := make([]byte, sha512.Size384)
	for _, f := range files {
		var ev [sha512.Size384]byte
		d := sha256.Sum256(f)
		copy(ev[:], d[:])
		h := sha512.New384()
		h.Write(rtmr)
		h.Write(ev[:])
		rtmr = h.Sum(nil)
	}
	return rtmr
}
