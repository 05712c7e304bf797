package workload

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
)

// SEV-SNP launch: PAGE_INFO page types (AMD SEV-SNP firmware ABI,
// SNP_LAUNCH_UPDATE).
const (
	pageNormal  = 0x01
	pageVMSA    = 0x02
	pageZero    = 0x03
	pageSecrets = 0x05
	pageCPUID   = 0x06
)

// OVMF metadata section types.
const (
	sectionSNPSecMem     = 1
	sectionSNPSecrets    = 2
	sectionCPUID         = 3
	sectionSVSMCAA       = 4
	sectionKernelHashes  = 0x10
	vmsaGPA              = 0xFFFFFFFFF000
	bspResetEIP          = 0xFFFFFFF0
	sevFeatureSNPActive  = 0x1
	pageSize             = 4096
	pageInfoLength       = 0x70
	hashTableHeaderGUID  = "9438d606-4f22-4cc9-b479-a793d411fd21"
	hashTableKernelGUID  = "4de79437-abd2-427f-b835-d5b172d2045b"
	hashTableInitrdGUID  = "44baf731-3a2f-4bd7-9af1-41e29169781d"
	hashTableCmdlineGUID = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a"
)

// updatePage folds one launch update into the digest: SHA-384 of the
// PAGE_INFO structure {DIGEST_CUR, CONTENTS, LENGTH 0x70, PAGE_TYPE,
// IMI_PAGE 0, VMPL3..1 permissions 0, reserved, GPA}.
func updatePage(ld []byte, pageType byte, gpa uint64, contents []byte) []byte {
	var info [pageInfoLength]byte
	copy(info[0:48], ld)
	copy(info[48:96], contents)
	binary.LittleEndian.PutUint16(info[0x60:], pageInfoLength)
	info[0x62] = pageType
	binary.LittleEndian.PutUint64(info[0x68:], gpa)
	d := sha512.Sum384(info[:])
	return d[:]
}

func updateNormalPages(ld []byte, gpa uint64, data []byte) []byte {
	for off := 0; off < len(data); off += pageSize {
		d := sha512.Sum384(data[off : off+pageSize])
		ld = updatePage(ld, pageNormal, gpa+uint64(off), d[:])
	}
	return ld
}

func updateZeroPages(ld []byte, gpa, size uint64) []byte {
	for off := uint64(0); off < size; off += pageSize {
		ld = updatePage(ld, pageZero, gpa+off, make([]byte, 48))
	}
	return ld
}

// guidLE is a GUID in its little-endian (EFI) byte order.
func guidLE(s string) []byte {
	u := uuid.MustParse(s)
	b := u[:]
	return []byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}

// hashesPage is the page QEMU fills with the SHA-256 of the kernel
// command line (NUL-terminated), initrd and kernel: a GUID table {header
// GUID, length 168, then three entries of GUID, length 50, hash}, padded
// to 16 bytes, at offset within the page.
func hashesPage(kernelHash, initrdHash []byte, cmdline string, offset int) []byte {
	cmd := sha256.Sum256(append([]byte(cmdline), 0))
	entry := func(guid string, h []byte) []byte {
		e := append(guidLE(guid), 50, 0)
		return append(e, h...)
	}
	table := append(guidLE(hashTableHeaderGUID), 168, 0)
	table = append(table, entry(hashTableCmdlineGUID, cmd[:])...)
	table = append(table, entry(hashTableInitrdGUID, initrdHash)...)
	table = append(table, entry(hashTableKernelGUID, kernelHash)...)
	page := make([]byte, pageSize)
	copy(page[offset:], table) // followed by 8 bytes of padding, zero
	return page
}

// vmsaPage is the initial VMSA QEMU gives each vCPU of an SEV-SNP guest
// (the register state at reset; AMD64 APM vol. 2, VMSA layout).
func vmsaPage(eip uint32, cpuSig uint64) []byte {
	p := make([]byte, pageSize)
	le := binary.LittleEndian
	seg := func(off int, sel, attr uint16, limit uint32, base uint64) {
		le.PutUint16(p[off:], sel)
		le.PutUint16(p[off+2:], attr)
		le.PutUint32(p[off+4:], limit)
		le.PutUint64(p[off+8:], base)
	}
	seg(0x000, 0, 0x0093, 0xFFFF, 0)                           // es
	seg(0x010, 0xF000, 0x009B, 0xFFFF, uint64(eip&0xFFFF0000)) // cs
	seg(0x020, 0, 0x0093, 0xFFFF, 0)                           // ss
	seg(0x030, 0, 0x0093, 0xFFFF, 0)                           // ds
	seg(0x040, 0, 0x0093, 0xFFFF, 0)                           // fs
	seg(0x050, 0, 0x0093, 0xFFFF, 0)                           // gs
	seg(0x060, 0, 0x0000, 0xFFFF, 0)                           // gdtr
	seg(0x070, 0, 0x0082, 0xFFFF, 0)                           // ldtr
	seg(0x080, 0, 0x0000, 0xFFFF, 0)                           // idtr
	seg(0x090, 0, 0x008B, 0xFFFF, 0)                           // tr
	le.PutUint64(p[0x0D0:], 0x1000)                            // EFER.SVME
	le.PutUint64(p[0x148:], 0x40)                              // CR4.MCE
	le.PutUint64(p[0x158:], 0x10)                              // CR0.ET
	le.PutUint64(p[0x160:], 0x400)                             // DR7
	le.PutUint64(p[0x168:], 0xFFFF0FF0)                        // DR6
	le.PutUint64(p[0x170:], 0x2)                               // RFLAGS
	le.PutUint64(p[0x178:], uint64(eip&0xFFFF))                // RIP
	le.PutUint64(p[0x268:], 0x0007040600070406)                // G_PAT
	le.PutUint64(p[0x310:], cpuSig)                            // RDX: CPUID signature
	le.PutUint64(p[0x3B0:], sevFeatureSNPActive)               // SEV_FEATURES
	le.PutUint64(p[0x3E8:], 0x1)                               // XCR0
	le.PutUint32(p[0x408:], 0x1F80)                            // MXCSR
	le.PutUint16(p[0x410:], 0x037F)                            // x87 FCW
	return p
}

// cpuSig is CPUID 1 EAX for an AMD family, model and stepping.
func cpuSig(family, model, stepping uint64) uint64 {
	famLow := min(family, 0xF) // families above 0xF carry the rest in the extended field
	famExt := family - famLow
	return famExt<<20 | (model>>4)<<16 | famLow<<8 | (model&0xF)<<4 | stepping
}

// vcpuSigs are QEMU's CPU models as SecretVM's registry names them.
var vcpuSigs = map[string]uint64{
	"EPYC": cpuSig(23, 1, 2), "EPYC-v1": cpuSig(23, 1, 2), "EPYC-v2": cpuSig(23, 1, 2), "EPYC-v3": cpuSig(23, 1, 2), "EPYC-v4": cpuSig(23, 1, 2),
	"EPYC-Rome": cpuSig(23, 49, 0), "EPYC-Milan": cpuSig(25, 1, 1), "EPYC-Genoa": cpuSig(25, 17, 0),
}

// LaunchDigest computes the SEV-SNP MEASUREMENT of a build launched with
// vcpus vCPUs and the kernel command line: from the OVMF digest, each OVMF
// metadata section (zero, secrets and CPUID pages, and the page of kernel,
// initrd and command-line hashes), then one VMSA page per vCPU.
func LaunchDigest(b SNPBuild, vcpus int, cmdline string) ([]byte, error) {
	ld, err := hex.DecodeString(b.OVMFHash)
	if err != nil || len(ld) != 48 {
		return nil, fmt.Errorf("ovmf_hash is not 48 bytes of hex")
	}
	kernel, err := hex.DecodeString(b.KernelHash)
	if err != nil || len(kernel) != 32 {
		return nil, fmt.Errorf("kernel_hash is not 32 bytes of hex")
	}
	initrd := sha256.Sum256(nil)
	initrdHash := initrd[:]
	if b.InitrdHash != "" {
		if initrdHash, err = hex.DecodeString(b.InitrdHash); err != nil || len(initrdHash) != 32 {
			return nil, fmt.Errorf("initrd_hash is not 32 bytes of hex")
		}
	}
	sig, ok := vcpuSigs[b.VCPUType]
	if b.VCPUType == "" {
		sig, ok = vcpuSigs["EPYC"], true
	}
	if !ok {
		return nil, fmt.Errorf("vcpu_type %q is not a known CPU model", b.VCPUType)
	}
	page := hashesPage(kernel, initrdHash, cmdline, int(b.HashesTableGPA&0xFFF))
	for _, s := range b.Sections {
		switch s.Type {
		case sectionSNPSecMem, sectionSVSMCAA:
			ld = updateZeroPages(ld, s.GPA, s.Size)
		case sectionSNPSecrets:
			ld = updatePage(ld, pageSecrets, s.GPA, make([]byte, 48))
		case sectionCPUID:
			ld = updatePage(ld, pageCPUID, s.GPA, make([]byte, 48))
		case sectionKernelHashes:
			ld = updateNormalPages(ld, s.GPA, page)
		default:
			return nil, fmt.Errorf("OVMF section type %#x is not known", s.Type)
		}
	}
	for i := 0; i < vcpus; i++ {
		eip := uint32(bspResetEIP)
		if i > 0 {
			eip = b.ResetEIP
		}
		d := sha512.Sum384(vmsaPage(eip, sig))
		ld = updatePage(ld, pageVMSA, vmsaGPA, d[:])
	}
	return ld, nil
}
