package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/attest"
	"github.com/teesign/teesign/internal/compose"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/keystore"
	"github.com/teesign/teesign/internal/provision"
)

const app = `
services:
  app:
    image: %s
    volumes:
      - ./crypto:/crypto:ro
`

func composeWith(t *testing.T, dir, image string) string {
	t.Helper()
	return write(t, dir, "docker-compose.yaml", strings.Replace(app, "%s", image, 1))
}

type started struct {
	pubs    map[keys.Alg]string
	retired string
	id      keystore.Identity
	sealed  bool
}

func start(t *testing.T, o provision.Options) started {
	t.Helper()
	res, err := provision.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	s := started{pubs: map[keys.Alg]string{}, retired: res.Retired, id: res.Workload, sealed: res.Sealed}
	for _, alg := range keys.Algs() {
		s.pubs[alg] = string(res.Identities[alg].PublicPEM)
	}
	return s
}

func retirement(t *testing.T, dir string) keystore.Retirement {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "retired.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r keystore.Retirement
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Keys belong to the workload they were made under: a changed workload
// (RTMR3 from the compose file, MR_TD of another image, another SEV-SNP
// measurement) gets new keys, and the old public keys and last quotes go
// to history with both identities; --keep-keys-across-updates keeps them
// where the sealing allows.
func TestKeysFollowTheWorkload(t *testing.T) {
	for _, c := range []struct {
		name, tee      string
		change         func(t *testing.T, dir string, o *provision.Options)
		changed        []string
		keepable       bool
		sealedUnopened bool
	}{
		{"compose file", attest.SimTDX, func(t *testing.T, dir string, o *provision.Options) { composeWith(t, dir, "evil") }, []string{"rtmr3"}, true, true},
		{"MR_TD", attest.SimTDX, func(t *testing.T, dir string, o *provision.Options) { o.Attest.SimImage = "other-image" }, []string{"mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}, false, true},
		{"SEV-SNP image", attest.SimSEVSNP, func(t *testing.T, dir string, o *provision.Options) { o.Attest.SimImage = "other-image" }, []string{"image_id", "measurement"}, false, true},
		{"SEV-SNP compose file", attest.SimSEVSNP, func(t *testing.T, dir string, o *provision.Options) { composeWith(t, dir, "evil") }, []string{"measurement"}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			o := provision.Options{ComposeFiles: []string{composeWith(t, dir, "alpine")}, StateDir: filepath.Join(dir, "state"), TEE: c.tee}
			first := start(t, o)
			if !first.sealed || first.retired != "" {
				t.Fatalf("first start: %+v", first)
			}
			if again := start(t, o); !again.id.Equal(first.id) || again.retired != "" || !maps(again.pubs, first.pubs) {
				t.Fatalf("same workload: new keys or a retirement: %+v", again)
			}
			lastQuote, _ := os.ReadFile(filepath.Join(dir, "state", keystore.QuoteFile(keys.Ed25519)))
			changed := o
			c.change(t, dir, &changed)
			second := start(t, changed)
			if second.retired == "" || maps(second.pubs, first.pubs) || second.id.Equal(first.id) {
				t.Fatalf("changed workload kept its keys: %+v", second)
			}
			r := retirement(t, second.retired)
			if r.Old == nil || !r.Old.Equal(first.id) || !r.New.Equal(second.id) || !slices.Equal(first.id.Diff(second.id), c.changed) || r.PublicKeys[keys.Ed25519] != first.pubs[keys.Ed25519] {
				t.Fatalf("history record: %+v (diff %v)", r, first.id.Diff(second.id))
			}
			moved, _ := os.ReadFile(filepath.Join(second.retired, keystore.QuoteFile(keys.Ed25519)))
			if !bytes.Equal(moved, lastQuote) {
				t.Fatal("the old last quote is not in history")
			}
			if _, err := os.Stat(filepath.Join(second.retired, "private_key_ed25519.sealed")); err != nil || !r.SealedFiles {
				t.Fatalf("the old sealed key did not move to history unopened: %v", err)
			}
			// Back to the first workload with keep: whether the keys can
			// stay depends on what the sealing key is bound to.
			composeWith(t, dir, "alpine")
			keep := o
			keep.KeepKeysAcrossUpdates = true
			kept, err := provision.Run(context.Background(), keep)
			if c.keepable != (err == nil) {
				t.Fatalf("--keep-keys-across-updates back to the first workload: %v", err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "cannot be kept") {
					t.Fatalf("keep refused without a reason: %v", err)
				}
				return
			}
			pub := string(kept.Identities[keys.Ed25519].PublicPEM)
			kept.Close()
			if pub != second.pubs[keys.Ed25519] {
				t.Fatal("--keep-keys-across-updates: the keys changed")
			}
			// Kept and rebound: the next start with the same workload
			// loads them without a change.
			if again := start(t, o); again.pubs[keys.Ed25519] != pub || again.retired != "" {
				t.Fatalf("after keep: %+v", again)
			}
		})
	}
}

func maps(a, b map[keys.Alg]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

// Sealed keys: the files on disk hold no private key, and keys that
// cannot be opened under their recorded identity (another chip: a new
// simulated machine) stop provisioning with nothing overwritten.
func TestSealedAtRest(t *testing.T) {
	for _, tee := range []string{attest.SimTDX, attest.SimSEVSNP} {
		t.Run(tee, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "state")
			o := provision.Options{ComposeFiles: []string{composeWith(t, dir, "alpine")}, StateDir: state, TEE: tee}
			res, err := provision.Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			priv := map[keys.Alg]*keys.PrivateKey{}
			for _, alg := range keys.Algs() {
				priv[alg] = res.Identities[alg].Key
			}
			res.Close()
			entries, _ := os.ReadDir(state)
			for _, e := range entries {
				data, _ := os.ReadFile(filepath.Join(state, e.Name()))
				for alg, k := range priv {
					if bytes.Contains(data, k.MarshalPEM()) || bytes.Contains(data, secret(t, k)) {
						t.Fatalf("%s holds the %s private key in the clear", e.Name(), alg)
					}
				}
				if strings.HasSuffix(e.Name(), ".pem") && strings.HasPrefix(e.Name(), "private_key_") {
					t.Fatalf("an unsealed key file: %s", e.Name())
				}
			}
			// Another machine: the simulated chain (the chip's secret)
			// is replaced; the same workload cannot open the keys.
			before := snapshot(t, state)
			for _, f := range []string{"sim-tdx-chain.pem", "sim-sev-snp-chain.pem"} {
				os.Remove(filepath.Join(state, f))
			}
			_, err = provision.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), "cannot be opened under the identity it records") {
				t.Fatalf("keys of another machine: %v", err)
			}
			after := snapshot(t, state)
			for name, data := range before {
				if strings.Contains(name, "private_key_") || name == keystore.RecordFile {
					if !bytes.Equal(after[name], data) {
						t.Fatalf("%s was changed after a failed unseal", name)
					}
				}
			}
		})
	}
}

// secret returns a private key's secret bytes (the ed25519 seed or the
// secp256k1 scalar) from its PKCS#8 encoding.
func secret(t *testing.T, k *keys.PrivateKey) []byte {
	t.Helper()
	b, _ := pem.Decode(k.MarshalPEM())
	if k.Alg() == keys.Ed25519 {
		return b.Bytes[len(b.Bytes)-32:]
	}
	i := bytes.Index(b.Bytes, []byte{0x02, 0x01, 0x01, 0x04, 0x20})
	if i < 0 {
		t.Fatal("no scalar in the secp256k1 PKCS#8")
	}
	return b.Bytes[i+5 : i+5+32]
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Type().IsRegular() {
			out[e.Name()], _ = os.ReadFile(filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// --key-lifetime boot: no private key is ever written, and every start
// makes new keys.
func TestKeyLifetimeBoot(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	o := provision.Options{ComposeFiles: []string{composeWith(t, dir, "alpine")}, StateDir: state, TEE: attest.SimTDX, KeyLifetime: provision.LifetimeBoot}
	res, err := provision.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	first := string(res.Identities[keys.Ed25519].PublicPEM)
	// While it holds the keys: no key file, no record, no quote kept
	// beside keys that do not last.
	entries, _ := os.ReadDir(state)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "private_key_") || e.Name() == keystore.RecordFile || e.Name() == keystore.QuoteFile(keys.Ed25519) || e.Name() == keystore.QuoteFile(keys.Secp256k1) {
			t.Fatalf("--key-lifetime boot wrote %s", e.Name())
		}
	}
	res.Close()
	second := start(t, o)
	if second.pubs[keys.Ed25519] == first {
		t.Fatal("--key-lifetime boot: the same key at the next start")
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "crypto", compose.FileName(compose.PublicKey, keys.Ed25519)))
	if string(pub) != second.pubs[keys.Ed25519] {
		t.Fatal("the crypto directory does not hold this start's key")
	}
}

// Every start writes every algorithm's public key and quote into the
// crypto directory (a directory mount of it works); a missing env_file
// does not stop provisioning.
func TestCryptoDirectoryAndMissingEnvFile(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "docker-compose.yaml", `
services:
  app:
    image: alpine
    env_file: usr/.env
    environment: ["TOKEN=${TOKEN}"]
    volumes:
      - ./crypto:/crypto:ro
`)
	res, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: filepath.Join(dir, "state"), TEE: attest.SimSEVSNP})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	for _, alg := range keys.Algs() {
		for _, kind := range []compose.FileKind{compose.PublicKey, compose.Attestation} {
			p := filepath.Join(dir, "crypto", compose.FileName(kind, alg))
			st, err := os.Stat(p)
			if err != nil || st.Mode().Perm() != 0o644 {
				t.Fatalf("%s: %v", p, err)
			}
		}
	}
	// --crypto-dir puts them elsewhere (SecretVM's layout).
	other := filepath.Join(dir, "mnt", "secure", "docker_wd", "crypto")
	res.Close()
	res2, err := provision.Run(context.Background(), provision.Options{ComposeFiles: []string{f}, StateDir: filepath.Join(dir, "state"), TEE: attest.SimSEVSNP, CryptoDir: other})
	if err != nil {
		t.Fatal(err)
	}
	defer res2.Close()
	if got, _ := os.ReadFile(filepath.Join(other, "docker_public_key_secp256k1.pem")); string(got) != string(res2.Identities[keys.Secp256k1].PublicPEM) {
		t.Fatal("--crypto-dir does not hold the public key")
	}
}

// A volume path that uses an unset variable is named.
func TestUnsetVariableInAMountIsNamed(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "docker-compose.yaml", `
services:
  app:
    image: alpine
    volumes:
      - ${TEESIGN_TEST_UNSET_DIR}/docker_public_key_ed25519.pem:/k.pem
      - ${TEESIGN_TEST_DEFAULTED:-.}/docker_attestation_ed25519.txt:/q.txt
`)
	proj, err := compose.Load(context.Background(), []string{f})
	if err != nil {
		t.Fatal(err)
	}
	if len(proj.Warnings) != 1 || !strings.Contains(proj.Warnings[0], "TEESIGN_TEST_UNSET_DIR") {
		t.Fatalf("warnings: %q", proj.Warnings)
	}
}
