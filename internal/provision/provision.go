// Package provision is teesign's boot step: it loads or creates the key
// pairs, gets one attestation quote per public key, and writes every file
// the compose files mount, before `docker compose up`.
package provision

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/teesign/teesign/internal/atomicfile"
	"github.com/teesign/teesign/internal/attest"
	"github.com/teesign/teesign/internal/compose"
	"github.com/teesign/teesign/internal/identity"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
)

// Options configure Run.
type Options struct {
	// ComposeFiles are the compose files, merged in order.
	ComposeFiles []string
	// StateDir holds the keys and the simulated chains.
	StateDir string
	// TEE is the attestation provider name (attest.Names).
	TEE string
	// Attest passes hardware options (tests use a fake configfs).
	Attest attest.Options
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// File is a file provisioning wrote (or found already up to date).
type File struct {
	Path    string
	Service string
	Target  string
	Kind    compose.FileKind
	Alg     keys.Alg
	Mode    os.FileMode
	Changed bool
}

// Result is a provisioned VM: open state (the caller must Close it), its
// identities and the files written.
type Result struct {
	Store      *keystore.Store
	Provider   attest.Provider
	Identities map[keys.Alg]*identity.Identity
	Files      []File
	Project    *compose.Project
}

// Close releases the state directory.
func (r *Result) Close() error { return r.Store.Close() }

// Run provisions. All mounts are checked before anything is written.
func Run(ctx context.Context, o Options) (*Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proj, err := compose.Load(ctx, o.ComposeFiles)
	if err != nil {
		return nil, err
	}
	if err := checkTargets(proj.Mounts); err != nil {
		return nil, err
	}
	store, err := keystore.Open(o.StateDir)
	if err != nil {
		return nil, err
	}
	res, err := run(ctx, o, proj, store, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	return res, nil
}

// checkTargets refuses sources that exist as something other than a
// regular file (Docker creates a directory at a missing bind source).
func checkTargets(mounts []compose.Mount) error {
	for _, m := range mounts {
		fi, err := os.Lstat(m.Source)
		if err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("service %q mounts %s, which exists and is not a regular file (Docker makes a directory at a missing bind source: remove it and run teesign before docker compose up)", m.Service, m.Source)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("service %q mount %s: %w", m.Service, m.Source, err)
		}
	}
	return nil
}

func run(ctx context.Context, o Options, proj *compose.Project, store *keystore.Store, log *slog.Logger) (*Result, error) {
	ao := o.Attest
	ao.StateDir = store.Dir()
	ao.Workload = proj.Contents
	if ao.Warn == nil {
		ao.Warn = func(msg string) { log.Warn(msg) }
	}
	prov, err := attest.New(ctx, o.TEE, ao)
	if err != nil {
		return nil, err
	}
	if prov.Simulated() {
		log.Warn("simulated TEE: quotes are NOT hardware-backed", "tee", prov.Name())
	}
	res := &Result{Store: store, Provider: prov, Identities: map[keys.Alg]*identity.Identity{}, Project: proj}
	for _, alg := range keys.Algs() {
		k, created, err := store.Key(alg)
		if err != nil {
			return nil, err
		}
		if created {
			log.Info("created key pair", "key_type", alg)
		}
		rd := k.Public().ReportData()
		ev, err := prov.Quote(ctx, rd)
		if err != nil {
			return nil, fmt.Errorf("attest %s public key: %w", alg, err)
		}
		res.Identities[alg] = identity.New(k, ev)
		log.Info("attested public key", "key_type", alg, "tee", prov.Name(), "report_data", hex.EncodeToString(rd[:]))
	}
	for _, m := range proj.Mounts {
		id := res.Identities[m.Alg]
		var data []byte
		mode := os.FileMode(0o644)
		switch m.Kind {
		case compose.PublicKey:
			data = id.PublicPEM
		case compose.Attestation:
			data = id.QuoteText
		case compose.PrivateKey:
			log.Warn("a compose file mounts a PRIVATE key into a container: the key leaves teesign's control; use the signing server instead", "service", m.Service, "file", m.Source)
			data = id.Key.MarshalPEM()
			mode = 0o600
		}
		if err := os.MkdirAll(filepath.Dir(m.Source), 0o755); err != nil {
			return nil, fmt.Errorf("service %q mount %s: %w", m.Service, m.Source, err)
		}
		changed, err := atomicfile.WriteIfChanged(m.Source, data, mode)
		if err != nil {
			return nil, fmt.Errorf("service %q mount %s: %w", m.Service, m.Source, err)
		}
		res.Files = append(res.Files, File{Path: m.Source, Service: m.Service, Target: m.Target, Kind: m.Kind, Alg: m.Alg, Mode: mode, Changed: changed})
	}
	return res, nil
}
