package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/teesign/teesign/internal/attest"
	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/provision"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/signer"
)

// vmFlags are the flags provision and serve share.
type vmFlags struct {
	compose                []string
	state                  string
	tee                    string
	cryptoDir, dockerFiles string
	keyLifetime            string
	keepKeys, allowPrivKM  bool
	logLevel               slog.Level
	qgsCID, qgsPort        uint32
	vmpl                   int
}

func (f *vmFlags) register(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.compose, "compose", nil, "docker-compose file (repeatable, merged as docker compose -f does)")
	c.MarkFlagRequired("compose")
	c.Flags().StringVar(&f.state, "state", defaultStateDir(), "state directory holding the keys (created 0700)")
	c.Flags().Var(newEnum(&f.tee, attest.Auto, attest.Names()...), "tee", "attestation provider: "+strings.Join(attest.Names(), ", "))
	c.Flags().Var(levelValue{&f.logLevel}, "log-level", "log level: debug, info, warn, error")
	c.Flags().StringVar(&f.cryptoDir, "crypto-dir", "", "directory that receives every algorithm's public key and quote at every start (default: crypto/ beside the first compose file; SecretVM's is /mnt/secure/docker_wd/crypto)")
	c.Flags().Var(newEnum(&f.keyLifetime, provision.LifetimePersist, provision.LifetimePersist, provision.LifetimeBoot), "key-lifetime", "persist: keys kept in the state directory (sealed where the TEE can seal) for as long as the workload stays the same; boot: keys in memory only, new at every start")
	c.Flags().BoolVar(&f.keepKeys, "keep-keys-across-updates", false, "keep the keys when the measured workload changes, instead of retiring them to STATE/history: trusts whoever controls upgrades with every key")
	c.Flags().StringVar(&f.dockerFiles, "docker-files", "", "the docker-files archive given to the VM: a simulated TEE measures its SHA-256 as SecretVM does")
	c.Flags().Uint32Var(&f.qgsCID, "qgs-cid", attest.DefaultQGSCID, "TDX without a configfs-tsm provider (SecretVM): vsock CID of the host's Quote Generation Service")
	c.Flags().Uint32Var(&f.qgsPort, "qgs-port", 0, "TDX without a configfs-tsm provider (SecretVM): vsock port of the host's Quote Generation Service (default: "+attest.TDXAttestConf+"'s port, else 4050)")
	c.Flags().IntVar(&f.vmpl, "vmpl", 0, "SEV-SNP through /dev/sev-guest: the VMPL to ask reports at, the guest's own (configfs-tsm finds it by itself)")
	c.Flags().BoolVar(&f.allowPrivKM, "allow-private-key-mounts", false, "write docker_private_key_<alg>.pem where a compose file mounts it (SecretVM's legacy scheme: the key leaves teesign's control)")
}

func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/teesign"
	}
	if d, err := os.UserConfigDir(); err == nil {
		return d + "/teesign"
	}
	return ".teesign"
}

func (f *vmFlags) logger(w io.Writer) (*slog.Logger, error) {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: f.logLevel})), nil
}

func (f *vmFlags) provision(ctx context.Context, log *slog.Logger) (*provision.Result, error) {
	return provision.Run(ctx, provision.Options{ComposeFiles: f.compose, StateDir: f.state, TEE: f.tee, CryptoDir: f.cryptoDir,
		KeyLifetime: f.keyLifetime, DockerFiles: f.dockerFiles, KeepKeysAcrossUpdates: f.keepKeys, AllowPrivateKeyMounts: f.allowPrivKM, Logger: log,
		Attest: attest.Options{QGS: attest.QGSOptions{CID: f.qgsCID, Port: f.qgsPort}, VMPL: f.vmpl}})
}

func printFiles(w io.Writer, res *provision.Result, lifetime string) {
	fmt.Fprintf(w, "teesign: TEE %s (simulated: %v), state %s, keys sealed: %v\n", res.Provider.Name(), res.Provider.Simulated(), res.Store.Dir(), res.Sealed)
	switch {
	case lifetime == provision.LifetimeBoot:
		fmt.Fprintln(w, "teesign: keys live in memory only (--key-lifetime boot): new at every start, never written")
	case !res.Sealed:
		fmt.Fprintln(w, "teesign: this TEE has no sealing key: the encrypted disk alone protects the private keys at rest")
	}
	for _, alg := range keys.Algs() {
		if ev := res.Identities[alg].Evidence; ev != nil && ev.Kind == quote.SEVSNP {
			if _, f, err := quote.Parse(ev.Raw); err == nil {
				fmt.Fprintf(w, "teesign: SEV-SNP reports at VMPL %v (pin it with the policy's vmpl)\n", f["vmpl"])
			}
			break
		}
	}
	fmt.Fprintf(w, "teesign: workload %s\n", res.Workload)
	if res.Retired != "" {
		fmt.Fprintf(w, "teesign: the previous keys were retired to %s\n", res.Retired)
	}
	for _, alg := range keys.Algs() {
		rd := res.Identities[alg].Key.Public().ReportData()
		fmt.Fprintf(w, "teesign: %s report_data %x\n", alg, rd[:])
		if addr, err := res.Identities[alg].Key.Public().EthAddress(); err == nil {
			fmt.Fprintf(w, "teesign: %s ethereum address %s\n", alg, addr)
		}
	}
	for _, f := range res.Files {
		state := "wrote"
		if !f.Changed {
			state = "unchanged"
		}
		if f.Service == "" {
			fmt.Fprintf(w, "teesign: %s %s (%s %s, mode %04o) in the crypto directory\n", state, f.Path, f.Kind, f.Alg, f.Mode.Perm())
			continue
		}
		fmt.Fprintf(w, "teesign: %s %s (%s %s, mode %04o) for service %q at %s\n", state, f.Path, f.Kind, f.Alg, f.Mode.Perm(), f.Service, f.Target)
	}
}

func newProvisionCmd() *cobra.Command {
	var f vmFlags
	c := &cobra.Command{
		Use:   "provision --compose FILE [--compose FILE]... [--state DIR] [--tee NAME]",
		Short: "Create or load the key pairs, attest them, and write the files the compose files mount",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			res, err := f.provision(cmd.Context(), log)
			if err != nil {
				return err
			}
			defer res.Close()
			printFiles(cmd.OutOrStdout(), res, f.keyLifetime)
			return nil
		},
	}
	f.register(c)
	return c
}

func newServeCmd() *cobra.Command {
	var f vmFlags
	var listen string
	var allow []netip.Prefix
	var allowPublic bool
	var maxConns int
	var heldBytes int64
	c := &cobra.Command{
		Use:   "serve --compose FILE [--compose FILE]... [--listen ADDR] [--allow CIDR]...",
		Short: "Provision, then run the signing server on the Docker bridge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			prefixes, refresh := signer.DefaultAllow(), signer.DefaultAllow
			if len(allow) > 0 {
				prefixes, refresh = append(signer.HostAllow(), allow...), nil
			}
			if listen == "" {
				listen = signer.DefaultListenAddr()
			}
			if err := signer.CheckExposure(listen, allow); err != nil {
				if !allowPublic {
					return err
				}
				log.Warn("EXPOSED: --allow-public: the signing server is reachable beyond private networks", "listen", listen, "why", err.Error())
			}
			tuneGC()
			res, err := f.provision(cmd.Context(), log)
			if err != nil {
				return err
			}
			defer res.Close()
			printFiles(cmd.OutOrStdout(), res, f.keyLifetime)
			h, err := signer.New(signer.Config{Identities: res.Identities, TEE: res.Provider.Name(), Allow: prefixes, Refresh: refresh, HeldBytes: heldBytes, Logger: log})
			if err != nil {
				return err
			}
			serve := func(ctx context.Context, ln net.Listener) error {
				// Under systemd (Type=notify), ready means every mounted
				// file is written and the server listens: a unit ordered
				// after teesign starts the workload only then.
				if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
					log.Warn("could not tell systemd the server is ready", "err", err.Error())
				} else if ok {
					log.Info("told systemd: ready")
				}
				defer daemon.SdNotify(false, daemon.SdNotifyStopping)
				return h.Serve(ctx, ln, maxConns)
			}
			return serveHTTP(cmd.Context(), cmd.OutOrStdout(), listen, serve, log, "signing server")
		},
	}
	f.register(c)
	c.Flags().StringVar(&listen, "listen", "", "address to listen on (default: the docker0 address, else 127.0.0.1, port 49153)")
	c.Flags().Var(prefixesValue{&allow}, "allow", "source network allowed to call the server, as CIDR (repeatable; loopback and this host's own addresses are always allowed; default: those and the Docker bridge networks, looked up again, at most once a second, when an unknown source connects)")
	c.Flags().BoolVar(&allowPublic, "allow-public", false, "allow a wildcard or non-private --listen address and --allow networks beyond private ones (logged loudly)")
	c.Flags().IntVar(&maxConns, "max-conns", signer.DefaultMaxConns, "open connections at most; more wait in the listen backlog")
	c.Flags().Int64Var(&heldBytes, "max-held-bytes", signer.DefaultHeldBytes, "request bytes held at once across connections; a request that cannot get its share in 5 s gets 503")
	return c
}

// tuneGC trades a little memory for fewer collections on the signing
// hot path (a heap goal 5× the live heap instead of 2×), under a soft
// memory limit that keeps the process small. GOGC and GOMEMLIMIT win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(40 << 20)
	}
}

// serveHTTP listens on addr and serves with serve until ctx ends, which
// then shuts down gracefully.
func serveHTTP(ctx context.Context, out io.Writer, addr string, serve func(context.Context, net.Listener) error, log *slog.Logger, what string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	fmt.Fprintf(out, "teesign: %s listening on http://%s\n", what, ln.Addr())
	log.Info(what+" listening", "addr", ln.Addr().String())
	if err := serve(ctx, ln); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	log.Info(what + " stopped")
	return nil
}
