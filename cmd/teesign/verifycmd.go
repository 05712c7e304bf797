package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/verifiersvc"
	"github.com/teesign/teesign/internal/webpage"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
	"github.com/teesign/teesign/workload"
)

func loadTrusted(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--trust-root: %w", err)
		}
		certs, err := verify.ParseCerts(data)
		if err != nil {
			return nil, fmt.Errorf("--trust-root %s: %w", f, err)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// amdFlags give SEV-SNP trust certificates by role.
type amdFlags struct{ ark, ask, vcek string }

func (a *amdFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&a.ark, "ark", "", "AMD ARK certificate, PEM (SEV-SNP; the default is AMD's own)")
	c.Flags().StringVar(&a.ask, "ask", "", "AMD ASK (or ASVK, for VLEK-signed reports) certificate, PEM")
	c.Flags().StringVar(&a.vcek, "vcek", "", "the report's VCEK (or VLEK) certificate, PEM or DER")
}

func (a *amdFlags) load() (verify.AMDCerts, error) {
	var out verify.AMDCerts
	for _, r := range []struct {
		flag, path string
		dst        **x509.Certificate
	}{{"--ark", a.ark, &out.ARK}, {"--ask", a.ask, &out.ASK}, {"--vcek", a.vcek, &out.VCEK}} {
		if r.path == "" {
			continue
		}
		data, err := os.ReadFile(r.path)
		if err != nil {
			return out, fmt.Errorf("%s: %w", r.flag, err)
		}
		certs, err := verify.ParseCerts(data)
		if err != nil {
			c, derErr := x509.ParseCertificate(data)
			if derErr != nil {
				return out, fmt.Errorf("%s %s: %w", r.flag, r.path, err)
			}
			certs = []*x509.Certificate{c}
		}
		if len(certs) != 1 {
			return out, fmt.Errorf("%s %s: want one certificate, found %d", r.flag, r.path, len(certs))
		}
		*r.dst = certs[0]
	}
	return out, nil
}

func newVerifyCmd() *cobra.Command {
	var quoteFile, message, messageFile, sigB64, keyType, pubkey, policyFile, format, certTable string
	var bundleFiles []string
	var anyWorkload bool
	var now time.Time
	var roots []string
	var amd amdFlags
	var wf workloadFlags
	var coll collateralFlags
	c := &cobra.Command{
		Use:   "verify (--bundle FILE|DIR... | --quote FILE (--message TEXT | --message-file FILE) --signature SIG) (--policy FILE | --compose FILE | --any-workload) [flags]",
		Short: "Verify a signature against an attestation quote; prints JSON, exit 0 only when valid",
		Long: "Verify a signature against an attestation quote and print each check as JSON.\n\n" +
			"\"valid\": true means: the quote is genuine TDX or SEV-SNP evidence signed under Intel's or AMD's root\n" +
			"(or a --trust-root), its TCB status is accepted (unless --offline), the workload it measures is the one\n" +
			"the --policy pins (and passes its hygiene rules) or, with --compose, an official SecretVM build running\n" +
			"that compose file, it binds the public key, and that key made the signature over the message.\n" +
			"Without a pinned workload the verdict is invalid, unless --any-workload accepts any workload explicitly.\n\n" +
			"--bundle FILE reads the quote, public key, message, signature and its format from one bundle file\n" +
			"(`teesign sign --bundle`, or \"bundle\": true in POST /sign); the workload still comes from a flag.\n" +
			"Several --bundle flags, or a directory (its *.json files), verify every bundle in one run: each quote is\n" +
			"checked once, then one signature per bundle; the output lists each file's result, with a progress bar\n" +
			"on a terminal, and the exit code is 0 only when every bundle is valid.\n\n" +
			"Exit codes: 0 valid; 1 invalid, or a failure (unreadable file, bad input, collateral unavailable);\n" +
			"2 a command line cobra refuses (unknown flag, bad flag value, missing required flag).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var b *bundle.Bundle
			var q, msg, sig []byte
			var err error
			files, err := bundlePaths(bundleFiles)
			if err != nil {
				return err
			}
			multi := len(files) > 1 || (len(bundleFiles) == 1 && isDir(bundleFiles[0]))
			if len(files) > 0 {
				if cmd.Flags().Changed("format") {
					return errors.New("--format comes from the bundle: leave it out with --bundle")
				}
				format = ""
				if !multi {
					data, err := os.ReadFile(files[0])
					if err != nil {
						return err
					}
					if b, err = bundle.Decode(data); err != nil {
						return fmt.Errorf("--bundle %s: %w", files[0], err)
					}
				}
			} else {
				if q, err = os.ReadFile(quoteFile); err != nil {
					return err
				}
				msg = []byte(message)
				if messageFile != "" {
					if msg, err = os.ReadFile(messageFile); err != nil {
						return err
					}
				}
				if sig, err = decodeSignature(format, strings.TrimSpace(sigB64)); err != nil {
					return err
				}
				if format == verify.FormatEthRaw {
					if msg, err = hex.DecodeString(strings.TrimPrefix(string(msg), "0x")); err != nil {
						return fmt.Errorf("--format eth_raw: the message must be the digest in hex: %w", err)
					}
				}
			}
			o := verify.Options{KeyType: keyType, Offline: coll.offline, Format: format, Collateral: coll.source(), AnyWorkload: anyWorkload, Now: now}
			if pubkey != "" {
				if o.PublicKeyPEM, err = os.ReadFile(pubkey); err != nil {
					return err
				}
			}
			if certTable != "" {
				if o.CertTable, err = readCertTable(certTable); err != nil {
					return err
				}
			}
			if policyFile != "" {
				if o.Policy, err = validate.Load(policyFile); err != nil {
					return err
				}
			}
			trusted, err := loadTrusted(roots)
			if err != nil {
				return err
			}
			roles, err := amd.load()
			if err != nil {
				return err
			}
			if o.Trust, err = verify.NewTrust(trusted, roles); err != nil {
				return err
			}
			reg, wl, err := wf.load()
			if err != nil {
				return err
			}
			if wl != nil {
				o.Workload = &verify.WorkloadCheck{Registry: reg, Workload: *wl}
			}
			if multi {
				o.Cache = verify.NewVerdictCache(0)
				return verifyBundles(cmd, files, o)
			}
			var res *verify.Result
			if b != nil {
				res, err = verify.VerifyBundle(cmd.Context(), b, o)
			} else {
				res, err = verify.Verify(cmd.Context(), q, msg, sig, o)
			}
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(res); err != nil {
				return err
			}
			if !res.Valid {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&quoteFile, "quote", "", "quote file (raw, hex or base64)")
	f.StringVar(&message, "message", "", "the signed message, as text")
	f.StringVar(&messageFile, "message-file", "", "file holding the signed message bytes")
	f.StringVar(&sigB64, "signature", "", "the signature, standard base64 (0x-hex for the Ethereum formats)")
	f.StringArrayVar(&bundleFiles, "bundle", nil, "verification bundle file (teesign sign --bundle), in place of --quote, --message and --signature; repeatable, or a directory of *.json bundles")
	c.MarkFlagsOneRequired("quote", "bundle")
	c.MarkFlagsRequiredTogether("quote", "signature")
	c.MarkFlagsOneRequired("message", "message-file", "bundle")
	c.MarkFlagsMutuallyExclusive("message", "message-file")
	for _, other := range []string{"quote", "signature", "message", "message-file"} {
		c.MarkFlagsMutuallyExclusive("bundle", other)
	}
	f.Var(newEnum(&keyType, "", "secp256k1", "ed25519"), "key-type", "key type: secp256k1 or ed25519 (default: the --pubkey's type, else secp256k1)")
	f.StringVar(&pubkey, "pubkey", "", "public key PEM the quote must bind")
	f.StringVar(&policyFile, "policy", "", "policy file (YAML or JSON) pinning the workload")
	f.BoolVar(&anyWorkload, "any-workload", false, "accept a quote whose workload no policy pins (the result says so): proves only that some workload on genuine hardware signed")
	f.StringArrayVar(&roots, "trust-root", nil, "extra trusted certificates, PEM (repeatable; e.g. a simulated TEE's sim-root.pem)")
	amd.register(c)
	wf.register(c, "the docker-compose file the VM should run: checked with the quote against the registry of SecretVM builds (repeatable: concatenated in order)")
	f.Var(timeValue{&now}, "now", "verify as of this time (RFC 3339; default now)")
	coll.register(c)
	f.StringVar(&certTable, "cert-table", "", "SEV-SNP certificate table file (base64, as /attestation's cert_table, or raw): its VCEK or VLEK is used")
	f.Var(newEnum(&format, verify.FormatDER, verify.FormatDER, verify.FormatEthPersonalSign, verify.FormatEthRaw), "format", "signature format: der (base64), eth_personal_sign or eth_raw (0x-hex r‖s‖v; for eth_raw the message is the digest in hex)")
	return c
}

// readCertTable reads a certificate table file: base64 text or raw bytes.
func readCertTable(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err == nil {
		return b, nil
	}
	return data, nil
}

// collateralFlags are the collateral options of verify and verifier serve.
type collateralFlags struct {
	offline          bool
	pccs, kds, cache string
	timeout          time.Duration
}

func (c *collateralFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&c.offline, "offline", false, "do not fetch collateral; tcb_status is reported as unchecked")
	f.StringVar(&c.pccs, "pccs-url", "", "PCCS base URL for TDX collateral (default: Intel PCS, "+verify.IntelPCSURL+")")
	f.StringVar(&c.kds, "kds-url", "", "AMD KDS base URL for SEV-SNP VCEKs and CRLs (default: "+verify.AMDKDSURL+")")
	f.StringVar(&c.cache, "cache-dir", defaultCacheDir(), "collateral cache, kept until each response's nextUpdate (\"\" disables it)")
	f.DurationVar(&c.timeout, "collateral-timeout", 10*time.Second, "timeout of each collateral request (retried 3 times with backoff)")
}

func (c *collateralFlags) source() *verify.CollateralSource {
	return &verify.CollateralSource{PCCSURL: c.pccs, KDSURL: c.kds, CacheDir: c.cache, Timeout: c.timeout}
}

func defaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "teesign", "collateral")
}

// decodeSignature reads --signature: base64 for der, 0x-hex for the
// Ethereum formats.
func decodeSignature(format, s string) ([]byte, error) {
	if format == verify.FormatEthPersonalSign || format == verify.FormatEthRaw {
		b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
		if err != nil {
			return nil, fmt.Errorf("--signature: an Ethereum signature is 0x-prefixed hex: %w", err)
		}
		return b, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("--signature is not standard base64: %w", err)
	}
	return b, nil
}

func newVerifierCmd() *cobra.Command {
	c := &cobra.Command{Use: "verifier", Short: "The verification service"}
	var listen, registry string
	var roots []string
	var amd amdFlags
	var coll collateralFlags
	serve := &cobra.Command{
		Use:   "serve [--listen ADDR] [--trust-root FILE]...",
		Short: "Serve the verifier page at /, POST /verify, POST /verify/batch and POST /dcap-tools/quote-parse",
		Long: "Serve the verification service: a page at / that verifies in the browser (the verifier compiled to\n" +
			"WebAssembly; the user's inputs never leave the browser), its collateral proxy (/collateral/: Intel's\n" +
			"and AMD's documents, fetched and cached as `teesign verify` does; off with --offline) and the registry\n" +
			"of builds (/registry/), and the JSON API: POST /verify, POST /verify/batch, POST /dcap-tools/quote-parse.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trusted, err := loadTrusted(roots)
			if err != nil {
				return err
			}
			roles, err := amd.load()
			if err != nil {
				return err
			}
			reg, err := workload.Embedded()
			if registry != "" {
				reg, err = workload.Load(registry)
			}
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			page, err := webpage.New()
			if err != nil {
				return err
			}
			trust, err := verify.NewTrust(trusted, roles)
			if err != nil {
				return err
			}
			h := &verifiersvc.Handler{Trust: trust, Registry: reg, Log: log, Offline: coll.offline, Collateral: coll.source(), Page: page, Cache: verify.NewVerdictCache(0)}
			srv := verifiersvc.Server(h)
			serve := func(ctx context.Context, ln net.Listener) error {
				return verifiersvc.Serve(ctx, srv, ln)
			}
			return serveHTTP(cmd.Context(), cmd.OutOrStdout(), listen, serve, log, "verifier")
		},
	}
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	serve.Flags().StringArrayVar(&roots, "trust-root", nil, "extra trusted certificates, PEM (repeatable)")
	amd.register(serve)
	serve.Flags().StringVar(&registry, "registry", "", "folder holding SecretVM's registry of builds (tdx.csv, sev.json) for requests with a compose file (default: the embedded one)")
	coll.register(serve)
	var out string
	pageCmd := &cobra.Command{
		Use:   "page --out DIR",
		Short: "Write the verifier page as static files, for any web host",
		Long: "Write the verifier page (index.html, style.css, app.js, wasm_exec.js, verify.wasm) into DIR.\n" +
			"A static host has no collateral proxy: the page then verifies offline (tcb_status unchecked) unless\n" +
			"the host forwards /collateral/ and /registry/ to `teesign verifier serve`. Serve verify.wasm as application/wasm.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			page, err := webpage.New()
			if err != nil {
				return err
			}
			if err := page.WriteStatic(out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s to %s\n", strings.Join(webpage.Names(), ", "), out)
			return nil
		},
	}
	pageCmd.Flags().StringVar(&out, "out", "", "directory to write the page into")
	pageCmd.MarkFlagRequired("out")
	c.AddCommand(serve, pageCmd)
	return c
}
