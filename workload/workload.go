// Package workload tells which SecretVM build a quote comes from and
// whether it runs a given docker-compose file, as SecretVM's own verifier
// does: from a registry of official builds and a replay of the launch
// measurements. On TDX the build is found by MRTD and RTMR0-2 and the
// workload by replaying RTMR3; on SEV-SNP the build is named by FAMILY_ID
// and IMAGE_ID and the workload by recomputing the launch digest with the
// compose file's hash on the kernel command line.
//
// It checks measurements only: whether the quote is genuine hardware
// evidence is package verify's job.
package workload

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/teesign/teesign/internal/quote"
)

// Statuses of a workload check, as SecretVM's verifier names them.
const (
	// AuthenticMatch: an official build running the given workload.
	AuthenticMatch = "authentic_match"
	// AuthenticMismatch: an official build, running another workload.
	AuthenticMismatch = "authentic_mismatch"
	// NotAuthentic: no official build has these measurements.
	NotAuthentic = "not_authentic"
)

// Result is the outcome of a workload check.
type Result struct {
	Status string `json:"status"`
	// TEE is "tdx" or "sev-snp".
	TEE string `json:"tee"`
	// Template is the VM size (small, medium, large, 2xlarge).
	Template string `json:"template,omitempty"`
	// ArtifactsVersion is the build's version, e.g. v0.0.25.
	ArtifactsVersion string `json:"artifacts_version,omitempty"`
	// Env is the build's environment (prod, dev, ...).
	Env string `json:"env,omitempty"`
	// Reason says, for anything but a match, what did not match.
	Reason string `json:"reason,omitempty"`
}

// Workload is what a VM was started with.
type Workload struct {
	// Compose is the docker-compose file's bytes exactly as given (no YAML
	// normalisation: the VM hashes the bytes).
	Compose []byte
	// DockerFilesSHA256 is the SHA-256 of the docker-files archive, when
	// the VM was given one (nil otherwise).
	DockerFilesSHA256 []byte
}

// TDXMeasurements are a TDX quote's launch measurements.
type TDXMeasurements struct {
	MRTD []byte
	RTMR [4][]byte
}

// ReplayRTMR3 returns the RTMR3 a SecretVM TD reports: from 48 zero bytes,
// RTMR3 = SHA-384(RTMR3 ‖ entry) for each entry of the log
// [SHA-256(compose), rootfs_data, SHA-256(docker-files archive) when
// given], each entry zero-padded to 48 bytes.
func ReplayRTMR3(compose, rootfsData, dockerFilesSHA256 []byte) []byte {
	c := sha256.Sum256(compose)
	log := [][]byte{c[:], rootfsData}
	if dockerFilesSHA256 != nil {
		log = append(log, dockerFilesSHA256)
	}
	rtmr := make([]byte, sha512.Size384)
	for _, e := range log {
		var entry [sha512.Size384]byte
		copy(entry[:], e)
		h := sha512.New384()
		h.Write(rtmr)
		h.Write(entry[:])
		rtmr = h.Sum(nil)
	}
	return rtmr
}

// CheckTDX finds the official builds with the quote's MRTD and RTMR0-2
// and replays RTMR3 for each with the workload.
func (r *Registry) CheckTDX(m TDXMeasurements, w Workload) Result {
	res := Result{Status: NotAuthentic, TEE: "tdx"}
	var cands []TDXBuild
	for _, b := range r.TDX {
		if bytes.Equal(b.MRTD, m.MRTD) && bytes.Equal(b.RTMR0, m.RTMR[0]) && bytes.Equal(b.RTMR1, m.RTMR[1]) && bytes.Equal(b.RTMR2, m.RTMR[2]) {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		res.Reason = fmt.Sprintf("no build in the registry (%s) has this MRTD and RTMR0-2", r.Source)
		return res
	}
	for _, b := range cands {
		if bytes.Equal(ReplayRTMR3(w.Compose, b.RootfsData, w.DockerFilesSHA256), m.RTMR[3]) {
			return Result{Status: AuthenticMatch, TEE: "tdx", Template: b.Template, ArtifactsVersion: b.ArtifactsVersion, Env: b.VMType}
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return newer(cands[i].ArtifactsVersion, cands[j].ArtifactsVersion) })
	b := cands[0]
	return Result{Status: AuthenticMismatch, TEE: "tdx", Template: b.Template, ArtifactsVersion: b.ArtifactsVersion, Env: b.VMType,
		Reason: "an official build, but RTMR3 is not the replay of this compose file (and docker-files digest, if any)"}
}

// newer orders versions: higher first, a release before its pre-releases.
func newer(a, b string) bool {
	pa, pb := parseVersion(a), parseVersion(b)
	if c := slices.Compare(pa.num[:], pb.num[:]); c != 0 {
		return c == 1
	}
	if (pa.pre == "") != (pb.pre == "") {
		return pa.pre == ""
	}
	return pa.pre > pb.pre
}

type version struct {
	num [3]int
	pre string
}

func parseVersion(v string) version {
	v = strings.TrimPrefix(v, "v")
	var out version
	core, pre, _ := strings.Cut(v, "-")
	out.pre = pre
	for i, p := range strings.SplitN(core, ".", 3) {
		n, _ := strconv.Atoi(p)
		out.num[i] = n
	}
	return out
}

// SNPReport is what an SEV-SNP workload check reads from a report.
type SNPReport struct {
	Measurement, FamilyID, ImageID []byte
}

// vCPUs of each SecretVM template.
var templateVCPUs = map[string]int{"small": 1, "medium": 2, "large": 4, "2xlarge": 8}

// Cmdline is the kernel command line a SecretVM SEV-SNP guest boots with.
func Cmdline(composeSHA256 []byte, rootfsHash string, dockerFilesSHA256 []byte) string {
	s := "console=ttyS0 loglevel=7 docker_compose_hash=" + hex.EncodeToString(composeSHA256) + " rootfs_hash=" + rootfsHash
	if dockerFilesSHA256 != nil {
		s += " docker_additional_files_hash=" + hex.EncodeToString(dockerFilesSHA256)
	}
	return s
}

// idString reads a FAMILY_ID or IMAGE_ID: text padded with '#' or NUL.
func idString(b []byte) string {
	return strings.TrimRight(string(b), "#\x00")
}

// FamilyID and ImageID return the SEV-SNP FAMILY_ID and IMAGE_ID of a
// SecretVM build, padded to 16 bytes with '#'.
func FamilyID(env, template string) []byte { return padID(env + "-" + template + "-sev") }

// ImageID is the IMAGE_ID of an artifacts version.
func ImageID(version string) []byte { return padID(version) }

func padID(s string) []byte {
	b := bytes.Repeat([]byte{'#'}, 16)
	copy(b, s)
	return b
}

// CheckSNP reads the build from FAMILY_ID (<env>-<template>-sev) and
// IMAGE_ID (the artifacts version), and recomputes the launch digest of
// each registry entry of that environment with the workload's command
// line, the entry of that version first.
func (r *Registry) CheckSNP(rep SNPReport, w Workload) Result {
	res := Result{Status: NotAuthentic, TEE: "sev-snp"}
	fam := idString(rep.FamilyID)
	core, ok := strings.CutSuffix(fam, "-sev")
	env, template, ok2 := strings.Cut(core, "-")
	vcpus := templateVCPUs[template]
	if !ok || !ok2 || vcpus == 0 {
		res.Reason = fmt.Sprintf("FAMILY_ID %q is not <env>-<template>-sev with a known template", fam)
		return res
	}
	image := idString(rep.ImageID)
	var cands []SNPBuild
	for _, b := range r.SNP {
		if b.VMType == env && b.ArtifactsVersion == image {
			cands = append(cands, b)
		}
	}
	for _, b := range r.SNP {
		if b.VMType == env && b.ArtifactsVersion != image {
			cands = append(cands, b)
		}
	}
	cs := sha256.Sum256(w.Compose)
	for _, b := range cands {
		d, err := LaunchDigest(b, vcpus, Cmdline(cs[:], b.RootfsHash, w.DockerFilesSHA256))
		if err == nil && bytes.Equal(d, rep.Measurement) {
			return Result{Status: AuthenticMatch, TEE: "sev-snp", Template: template, ArtifactsVersion: b.ArtifactsVersion, Env: env}
		}
	}
	if len(cands) > 0 && cands[0].ArtifactsVersion == image {
		return Result{Status: AuthenticMismatch, TEE: "sev-snp", Template: template, ArtifactsVersion: image, Env: env,
			Reason: "an official build, but MEASUREMENT is not its launch digest with this compose file (and docker-files digest, if any)"}
	}
	res.Reason = fmt.Sprintf("no build in the registry (%s) is %s %s", r.Source, env, image)
	return res
}

// CheckQuote checks a raw quote (a TDX v4/v5 quote or a SEV-SNP report)
// against the registry: CheckTDX or CheckSNP by the quote's kind. It
// returns an error for a quote it cannot read, or when the registry has
// no build of the quote's TEE (an empty registry proves nothing).
func (r *Registry) CheckQuote(raw []byte, w Workload) (Result, error) {
	kind, err := quote.Detect(raw)
	if err != nil {
		return Result{}, err
	}
	if r.Empty(string(kind)) {
		return Result{}, fmt.Errorf("%s has no %s build: pass SecretVM's registry files (tdx.csv, sev.json) with --registry DIR", r.Source, kind)
	}
	if kind == quote.TDX {
		q, err := quote.ParseTDX(raw)
		if err != nil {
			return Result{}, err
		}
		b := quote.TDXBody(q)
		if b == nil || len(b.GetRtmrs()) != 4 {
			return Result{}, fmt.Errorf("TDX quote: no TD quote body with 4 RTMRs")
		}
		return r.CheckTDX(TDXMeasurements{MRTD: b.GetMrTd(), RTMR: [4][]byte(b.GetRtmrs())}, w), nil
	}
	rep, err := quote.ParseSNP(raw)
	if err != nil {
		return Result{}, err
	}
	return r.CheckSNP(SNPReport{Measurement: rep.GetMeasurement(), FamilyID: rep.GetFamilyId(), ImageID: rep.GetImageId()}, w), nil
}
