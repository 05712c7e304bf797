// Package compose finds, in docker-compose files, the bind mounts that ask
// teesign for a file: docker_public_key_<alg>.pem,
// docker_attestation_<alg>.txt and docker_private_key_<alg>.pem. Files are
// loaded with compose-go, merged and interpolated as `docker compose -f`
// does (.env, ${VAR:-default}, relative paths).
package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/teesign/teesign/internal/keys"
)

// FileKind is what a mounted file holds.
type FileKind string

const (
	// PublicKey is docker_public_key_<alg>.pem: the SPKI PEM.
	PublicKey FileKind = "public_key"
	// Attestation is docker_attestation_<alg>.txt: the quote.
	Attestation FileKind = "attestation"
	// PrivateKey is docker_private_key_<alg>.pem (legacy; discouraged).
	PrivateKey FileKind = "private_key"
)

var kinds = []struct {
	prefix, ext string
	kind        FileKind
}{
	{"docker_public_key_", ".pem", PublicKey},
	{"docker_attestation_", ".txt", Attestation},
	{"docker_private_key_", ".pem", PrivateKey},
}

// FileName returns the file name teesign uses for kind and alg.
func FileName(kind FileKind, alg keys.Alg) string {
	for _, k := range kinds {
		if k.kind == kind {
			return k.prefix + string(alg) + k.ext
		}
	}
	return ""
}

// AcceptedNames lists every file name a mount may request.
func AcceptedNames() []string {
	var out []string
	for _, k := range kinds {
		for _, alg := range keys.Algs() {
			out = append(out, k.prefix+string(alg)+k.ext)
		}
	}
	return out
}

// Classify tells what a bind source's base name requests. ok is false for
// names teesign does not handle; err is set for names that start like a
// teesign file but name an unknown algorithm or the wrong extension.
func Classify(base string) (kind FileKind, alg keys.Alg, ok bool, err error) {
	for _, k := range kinds {
		if !strings.HasPrefix(base, k.prefix) {
			continue
		}
		rest := strings.TrimPrefix(base, k.prefix)
		for _, a := range keys.Algs() {
			if rest == string(a)+k.ext {
				return k.kind, a, true, nil
			}
		}
		return "", "", false, fmt.Errorf("%q is not a file teesign provides: accepted names are %s", base, strings.Join(AcceptedNames(), ", "))
	}
	return "", "", false, nil
}

// Mount is a bind mount that requests a teesign file.
type Mount struct {
	Service string
	// Source is the absolute host path teesign must write.
	Source string
	// Target is the path inside the container.
	Target string
	Kind   FileKind
	Alg    keys.Alg
}

// Project is what teesign needs from the compose files.
type Project struct {
	// Files are the compose files' absolute paths, in order.
	Files []string
	// Contents are the files' bytes, in order (the workload measured into RTMR3).
	Contents [][]byte
	// Mounts are the requests, sorted by source path then service.
	Mounts []Mount
	// Warnings name what the files leave to chance: a teesign mount
	// whose path uses an unset variable.
	Warnings []string
}

// unsetRef matches a reference to variable name with a default or an
// error message (${X:-d}, ${X-d}, ${X:?m}, ${X?m}), which is not left to
// chance.
func unsetRef(name string) *regexp.Regexp {
	return regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `:?[-?]`)
}

// Load reads and merges the compose files and returns every teesign mount.
// Any malformed request is an error naming the service and the mount, and
// nothing is returned: callers write nothing.
func Load(ctx context.Context, files []string) (*Project, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("no compose file given (use --compose FILE)")
	}
	p := &Project{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("compose file %s: %w", f, err)
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			return nil, fmt.Errorf("compose file: %w", err)
		}
		p.Files = append(p.Files, abs)
		p.Contents = append(p.Contents, data)
	}
	// Values that referred to an unset variable, with its names: a mount
	// path among them lands somewhere else than its author meant.
	unset := map[string][]string{}
	record := func(o *loader.Options) {
		// env_file and the environment are not resolved: mounts need no
		// values from them, and SecretVM writes usr/.env at boot, after
		// teesign may run.
		o.SkipResolveEnvironment = true
		if o.Interpolate == nil {
			return
		}
		sub := o.Interpolate.Substitute
		o.Interpolate.Substitute = func(value string, m template.Mapping) (string, error) {
			var missing []string
			out, err := sub(value, func(name string) (string, bool) {
				v, ok := m(name)
				if !ok && !unsetRef(name).MatchString(value) {
					missing = append(missing, name)
				}
				return v, ok
			})
			if len(missing) > 0 {
				unset[value] = missing
			}
			return out, err
		}
	}
	opts, err := cli.NewProjectOptions(p.Files,
		cli.WithWorkingDirectory(filepath.Dir(p.Files[0])),
		cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv, cli.WithName("teesign"),
		cli.WithResolvedPaths(true), cli.WithLoadOptions(record))
	if err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	proj, err := cli.ProjectFromOptions(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("compose file %s: %w", strings.Join(files, ", "), err)
	}
	mounts, err := FindMounts(proj)
	if err != nil {
		return nil, err
	}
	p.Mounts = mounts
	values := make([]string, 0, len(unset))
	for v := range unset {
		values = append(values, v)
	}
	sort.Strings(values)
	for _, v := range values {
		for _, k := range kinds {
			if strings.Contains(v, k.prefix) {
				p.Warnings = append(p.Warnings, fmt.Sprintf("the mount %q uses the unset variable %s, which became empty: the file lands at another path than its author meant; set it or give a default (${%s:-...})", v, strings.Join(unset[v], ", "), unset[v][0]))
				break
			}
		}
	}
	return p, nil
}

// FindMounts returns the teesign mounts of a loaded project.
func FindMounts(proj *types.Project) ([]Mount, error) {
	var out []Mount
	var errs []string
	names := make([]string, 0, len(proj.Services))
	for name := range proj.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		svc := proj.Services[name]
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind || v.Source == "" {
				continue
			}
			kind, alg, ok, err := Classify(filepath.Base(v.Source))
			if err != nil {
				errs = append(errs, fmt.Sprintf("service %q, mount %s:%s: %v", name, v.Source, v.Target, err))
				continue
			}
			if !ok {
				continue
			}
			src := v.Source
			if !filepath.IsAbs(src) {
				src = filepath.Join(proj.WorkingDir, src)
			}
			out = append(out, Mount{Service: name, Source: filepath.Clean(src), Target: v.Target, Kind: kind, Alg: alg})
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("compose: %s", strings.Join(errs, "; "))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out, nil
}
