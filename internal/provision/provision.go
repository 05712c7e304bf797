// Package provision is teesign's boot step: it loads or creates the key
// pairs, gets one attestation quote per public key, and writes every file
// the compose files mount, before `docker compose up`.
package provision

import (
	"context"
	"crypto/sha256"
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
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/simtee"
)

// SimRegistryDir is where provisioning on a simulated TEE writes the
// simulated registry of builds, in the state directory.
const SimRegistryDir = "sim-registry"

// Key lifetimes (--key-lifetime).
const (
	// LifetimePersist keeps keys in the state directory, bound to the
	// workload identity they were made under.
	LifetimePersist = "persist"
	// LifetimeBoot keeps keys in memory only: new at every start, never
	// written.
	LifetimeBoot = "boot"
)

// Options configure Run.
type Options struct {
	// ComposeFiles are the compose files, merged in order.
	ComposeFiles []string
	// StateDir holds the keys and the simulated chains.
	StateDir string
	// TEE is the attestation provider name (attest.Names).
	TEE string
	// CryptoDir receives the public key and quote of every algorithm at
	// every start (default: crypto/ beside the first compose file).
	CryptoDir string
	// KeyLifetime is LifetimePersist (default) or LifetimeBoot.
	KeyLifetime string
	// KeepKeysAcrossUpdates keeps the keys when the workload identity
	// changes, instead of retiring them: it trusts whoever controls
	// upgrades with every key.
	KeepKeysAcrossUpdates bool
	// DockerFiles is the docker-files archive given to the VM, if any:
	// the simulators measure its SHA-256 as SecretVM does.
	DockerFiles string
	// AllowPrivateKeyMounts lets a compose file mount a private key into a
	// container (SecretVM's first, legacy scheme); without it such a mount
	// is an error and nothing is written.
	AllowPrivateKeyMounts bool
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
	// Workload is the workload identity the keys belong to.
	Workload keystore.Identity
	// Retired is the history directory the previous keys moved to, if
	// they did at this start.
	Retired string
	// Sealed says the private keys are sealed at rest.
	Sealed bool
}

// Close releases the state directory.
func (r *Result) Close() error { return r.Store.Close() }

// Run provisions. All mounts are checked before anything is written.
func Run(ctx context.Context, o Options) (*Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch o.KeyLifetime {
	case "":
		o.KeyLifetime = LifetimePersist
	case LifetimePersist, LifetimeBoot:
	default:
		return nil, fmt.Errorf("key lifetime %q: use %s or %s", o.KeyLifetime, LifetimePersist, LifetimeBoot)
	}
	proj, err := compose.Load(ctx, o.ComposeFiles)
	if err != nil {
		return nil, err
	}
	for _, w := range proj.Warnings {
		log.Warn(w)
	}
	if !o.AllowPrivateKeyMounts {
		for _, m := range proj.Mounts {
			if m.Kind == compose.PrivateKey {
				return nil, fmt.Errorf("service %q mounts the private key %s at %s: a private key in a container leaves teesign's control (use the signing server instead); nothing was written. To write it anyway (SecretVM's first, legacy scheme), pass --allow-private-key-mounts", m.Service, m.Source, m.Target)
			}
		}
	}
	if o.CryptoDir == "" {
		o.CryptoDir = filepath.Join(filepath.Dir(proj.Files[0]), "crypto")
	}
	if err := checkTargets(proj.Mounts, o.CryptoDir); err != nil {
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
// regular file (Docker creates a directory at a missing bind source), and
// a crypto directory that is not a directory.
func checkTargets(mounts []compose.Mount, cryptoDir string) error {
	for _, m := range mounts {
		fi, err := os.Lstat(m.Source)
		if err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("service %q mounts %s, which exists and is not a regular file (Docker makes a directory at a missing bind source: remove it and run teesign before docker compose up)", m.Service, m.Source)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("service %q mount %s: %w", m.Service, m.Source, err)
		}
	}
	if fi, err := os.Stat(cryptoDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("crypto directory %s exists and is not a directory", cryptoDir)
	}
	return nil
}

func run(ctx context.Context, o Options, proj *compose.Project, store *keystore.Store, log *slog.Logger) (*Result, error) {
	ao := o.Attest
	ao.StateDir = store.Dir()
	ao.Workload = proj.Contents
	if o.DockerFiles != "" {
		data, err := os.ReadFile(o.DockerFiles)
		if err != nil {
			return nil, fmt.Errorf("--docker-files: %w", err)
		}
		d := sha256.Sum256(data)
		ao.DockerFilesSHA256 = d[:]
	}
	prov, err := attest.New(ctx, o.TEE, ao)
	if err != nil {
		return nil, err
	}
	if !prov.Simulated() {
		switch kind, err := stateStorage(store.Dir()); {
		case err != nil:
			log.Warn("could not tell where the state directory is stored", "err", err.Error())
		case kind == storagePlain:
			log.Warn("THE STATE DIRECTORY IS ON NEITHER AN ENCRYPTED DISK NOR A RAM FILE SYSTEM: the host of a cloud confidential VM can read its root disk; put --state on the VM's encrypted volume, or on a tmpfs with --key-lifetime boot",
				"state", store.Dir(), "sealed", prov.Kind() == quote.SEVSNP)
		default:
			log.Info("state directory storage", "state", store.Dir(), "storage", kind)
		}
	}
	if prov.Simulated() {
		log.Warn("simulated TEE: quotes are NOT hardware-backed", "tee", prov.Name())
		// The simulated build's registry, so that `verify --compose
		// --registry STATE/sim-registry` takes the path of a real SecretVM.
		if err := simtee.Registry(ao.SimImage).Write(filepath.Join(store.Dir(), SimRegistryDir)); err != nil {
			return nil, fmt.Errorf("simulated registry: %w", err)
		}
	}
	res := &Result{Store: store, Provider: prov, Identities: map[keys.Alg]*identity.Identity{}, Project: proj}
	k := &keyring{prov: prov, store: store, log: log, evs: map[keys.Alg]*quote.Evidence{}}
	var priv map[keys.Alg]*keys.PrivateKey
	if o.KeyLifetime == LifetimeBoot {
		priv, err = k.fresh(ctx)
	} else {
		priv, err = k.persistent(ctx, o.KeepKeysAcrossUpdates)
	}
	if err != nil {
		return nil, err
	}
	res.Workload, res.Retired, res.Sealed = k.id, k.retired, k.sealed
	for _, alg := range keys.Algs() {
		ev := k.evs[alg]
		if ev == nil {
			rd := priv[alg].Public().ReportData()
			if ev, err = prov.Quote(ctx, rd); err != nil {
				return nil, fmt.Errorf("attest %s public key: %w", alg, err)
			}
		}
		id := identity.New(priv[alg], ev)
		res.Identities[alg] = id
		if o.KeyLifetime == LifetimePersist {
			if err := store.SaveQuote(alg, id.QuoteText); err != nil {
				return nil, err
			}
		}
		rd := priv[alg].Public().ReportData()
		log.Info("attested public key", "key_type", alg, "tee", prov.Name(), "report_data", hex.EncodeToString(rd[:]))
	}
	// Every start writes every algorithm's public key and quote into the
	// crypto directory, as SecretVM does, then whatever else a mount names.
	if err := os.MkdirAll(o.CryptoDir, 0o755); err != nil {
		return nil, fmt.Errorf("crypto directory: %w", err)
	}
	var writes []File
	for _, alg := range keys.Algs() {
		writes = append(writes,
			File{Path: filepath.Join(o.CryptoDir, compose.FileName(compose.PublicKey, alg)), Kind: compose.PublicKey, Alg: alg},
			File{Path: filepath.Join(o.CryptoDir, compose.FileName(compose.Attestation, alg)), Kind: compose.Attestation, Alg: alg})
	}
	for _, m := range proj.Mounts {
		writes = append(writes, File{Path: m.Source, Service: m.Service, Target: m.Target, Kind: m.Kind, Alg: m.Alg})
	}
	for _, f := range writes {
		id := res.Identities[f.Alg]
		var data []byte
		f.Mode = 0o644
		switch f.Kind {
		case compose.PublicKey:
			data = id.PublicPEM
		case compose.Attestation:
			data = id.QuoteText
		case compose.PrivateKey:
			log.Warn("a compose file mounts a PRIVATE key into a container (--allow-private-key-mounts): the key leaves teesign's control; use the signing server instead", "service", f.Service, "file", f.Path)
			data = id.Key.MarshalPEM()
			f.Mode = 0o600
		}
		where := "crypto directory"
		if f.Service != "" {
			where = fmt.Sprintf("service %q mount", f.Service)
		}
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			return nil, fmt.Errorf("%s %s: %w", where, f.Path, err)
		}
		changed, err := atomicfile.WriteIfChanged(f.Path, data, f.Mode)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", where, f.Path, err)
		}
		f.Changed = changed
		res.Files = append(res.Files, f)
	}
	return res, nil
}

// keyring finds the keys of this start and the quotes already made.
type keyring struct {
	prov    attest.Provider
	store   *keystore.Store
	log     *slog.Logger
	evs     map[keys.Alg]*quote.Evidence
	id      keystore.Identity
	retired string
	sealed  bool
}

// first is the algorithm whose quote tells the workload identity.
var first = keys.Algs()[0]

// fresh makes keys in memory and quotes the first, which tells the
// workload identity.
func (k *keyring) fresh(ctx context.Context) (map[keys.Alg]*keys.PrivateKey, error) {
	priv := map[keys.Alg]*keys.PrivateKey{}
	for _, alg := range keys.Algs() {
		p, err := keys.Generate(alg)
		if err != nil {
			return nil, err
		}
		priv[alg] = p
	}
	ev, err := k.prov.Quote(ctx, priv[first].Public().ReportData())
	if err != nil {
		return nil, fmt.Errorf("attest %s public key: %w", first, err)
	}
	k.evs[first] = ev
	if k.id, err = attest.IdentityOf(k.prov, ev); err != nil {
		return nil, err
	}
	return priv, nil
}

// sealer returns the TEE's sealer, or nil when it cannot seal (TDX).
func (k *keyring) sealer(ev *quote.Evidence) (keystore.Sealer, error) {
	s, ok := k.prov.(attest.Sealing)
	if !ok {
		return nil, nil
	}
	return s.Sealer(ev)
}

// persistent loads the recorded keys when the workload identity is the
// one they were made under, and otherwise retires them and makes new ones
// (or, with keep, records them under the new identity).
func (k *keyring) persistent(ctx context.Context, keep bool) (map[keys.Alg]*keys.PrivateKey, error) {
	rec, err := k.store.Record()
	if err != nil {
		return nil, err
	}
	if rec == nil {
		if orphans := k.store.Orphans(); len(orphans) > 0 {
			dir, err := k.store.Retire(nil, keystore.Identity{}, "key files without a record of the workload they belong to (an earlier teesign version, or a crash before the record was written)")
			if err != nil {
				return nil, err
			}
			k.retired = dir
			k.log.Warn("KEYS RETIRED: key files with no recorded workload identity were moved to history unopened; new keys are made", "files", orphans, "history", dir)
		}
	}
	if rec != nil {
		pub, err := keys.ParsePublicKeyPEM([]byte(rec.PublicKeys[first]))
		if err != nil {
			return nil, fmt.Errorf("state: recorded %s public key: %w", first, err)
		}
		ev, err := k.prov.Quote(ctx, pub.ReportData())
		if err != nil {
			return nil, fmt.Errorf("attest %s public key: %w", first, err)
		}
		cur, err := attest.IdentityOf(k.prov, ev)
		if err != nil {
			return nil, err
		}
		sealer, err := k.sealer(ev)
		if err != nil {
			return nil, err
		}
		switch {
		case cur.Equal(rec.Identity):
			priv, err := k.store.Load(rec, sealer)
			if err != nil {
				return nil, err
			}
			k.evs[first], k.id, k.sealed = ev, cur, rec.Sealed
			return priv, nil
		case keep:
			priv, err := k.store.Load(rec, sealer)
			if err != nil {
				return nil, fmt.Errorf("--keep-keys-across-updates: the keys cannot be kept: %w (sealed keys are bound to the launch measurement and the machine: only a change of what is measured later, such as TDX RTMR3 or SEV-SNP HOST_DATA, can keep them)", err)
			}
			if err := k.store.Rebind(rec, cur, priv, sealer); err != nil {
				return nil, err
			}
			k.log.Warn("KEYS KEPT ACROSS A WORKLOAD CHANGE (--keep-keys-across-updates): whoever controls upgrades now holds keys that earlier quotes attribute to the old workload",
				"old_identity", rec.Identity.String(), "new_identity", cur.String(), "changed", rec.Identity.Diff(cur))
			k.evs[first], k.id, k.sealed = ev, cur, rec.Sealed
			return priv, nil
		}
		dir, err := k.store.Retire(rec, cur, "the workload identity changed")
		if err != nil {
			return nil, err
		}
		k.retired = dir
		k.log.Warn("KEYS RETIRED: the workload is not the one these keys were made for; its keys and last quotes moved to history, and new keys are made",
			"old_identity", rec.Identity.String(), "new_identity", cur.String(), "changed", rec.Identity.Diff(cur), "history", dir)
	}
	priv, err := k.fresh(ctx)
	if err != nil {
		return nil, err
	}
	sealer, err := k.sealer(k.evs[first])
	if err != nil {
		return nil, err
	}
	if _, err := k.store.Create(k.id, priv, sealer); err != nil {
		return nil, err
	}
	k.sealed = sealer != nil
	for _, alg := range keys.Algs() {
		k.log.Info("created key pair", "key_type", alg)
	}
	return priv, nil
}
