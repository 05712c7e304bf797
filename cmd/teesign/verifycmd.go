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

	"github.com/teesign/teesign/internal/httpguard"
	"github.com/teesign/teesign/internal/verifiersvc"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

func loadTrusted(files []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--trust-root: %w", err))
		}
		certs, err := verify.ParseCerts(data)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--trust-root %s: %w", f, err))
		}
		out = append(out, certs...)
	}
	return out, nil
}

func newVerifyCmd() *cobra.Command {
	var quoteFile, message, messageFile, sigB64, keyType, pubkey, policyFile, format, certTable string
	var roots []string
	var coll collateralFlags
	c := &cobra.Command{
		Use:   "verify --quote FILE (--message TEXT | --message-file FILE) --signature B64 [flags]",
		Short: "Verify a signature against an attestation quote; prints JSON, exit 0 only when valid",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if quoteFile == "" || sigB64 == "" || (message == "") == (messageFile == "") {
				return usageErr(errors.New("need --quote, --signature and exactly one of --message or --message-file"))
			}
			q, err := os.ReadFile(quoteFile)
			if err != nil {
				return usageErr(err)
			}
			msg := []byte(message)
			if messageFile != "" {
				if msg, err = os.ReadFile(messageFile); err != nil {
					return usageErr(err)
				}
			}
			sig, err := decodeSignature(format, strings.TrimSpace(sigB64))
			if err != nil {
				return usageErr(err)
			}
			if format == verify.FormatEthRaw {
				if msg, err = hex.DecodeString(strings.TrimPrefix(string(msg), "0x")); err != nil {
					return usageErr(fmt.Errorf("--format eth_raw: the message must be the digest in hex: %w", err))
				}
			}
			o := verify.Options{KeyType: keyType, Offline: coll.offline, Format: format, Collateral: coll.source()}
			if pubkey != "" {
				if o.PublicKeyPEM, err = os.ReadFile(pubkey); err != nil {
					return usageErr(err)
				}
			}
			if certTable != "" {
				if o.CertTable, err = readCertTable(certTable); err != nil {
					return usageErr(err)
				}
			}
			if policyFile != "" {
				if o.Policy, err = validate.Load(policyFile); err != nil {
					return usageErr(err)
				}
			}
			if o.TrustedCerts, err = loadTrusted(roots); err != nil {
				return err
			}
			res, err := verify.Verify(cmd.Context(), q, msg, sig, o)
			if err != nil {
				return usageErr(err)
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
	f.StringVar(&quoteFile, "quote", "", "quote file (hex or base64)")
	f.StringVar(&message, "message", "", "the signed message, as text")
	f.StringVar(&messageFile, "message-file", "", "file holding the signed message bytes")
	f.StringVar(&sigB64, "signature", "", "the signature, standard base64")
	f.StringVar(&keyType, "key-type", "secp256k1", "key type: secp256k1 or ed25519")
	f.StringVar(&pubkey, "pubkey", "", "public key PEM the quote must bind")
	f.StringVar(&policyFile, "policy", "", "policy file (YAML or JSON)")
	f.StringArrayVar(&roots, "trust-root", nil, "extra trusted certificates, PEM (repeatable; e.g. a simulated TEE's sim-root.pem)")
	coll.register(c)
	f.StringVar(&certTable, "cert-table", "", "SEV-SNP certificate table file (base64, as /attestation's cert_table, or raw): its VCEK is used")
	f.StringVar(&format, "format", verify.FormatDER, "signature format: der (base64), eth_personal_sign or eth_raw (0x-hex r‖s‖v; for eth_raw the message is the digest in hex)")
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
	var listen string
	var roots []string
	var coll collateralFlags
	serve := &cobra.Command{
		Use:   "serve [--listen ADDR] [--trust-root FILE]...",
		Short: "Serve POST /verify and POST /dcap-tools/quote-parse",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trusted, err := loadTrusted(roots)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))
			h := &verifiersvc.Handler{Trusted: trusted, Log: log, Offline: coll.offline, Collateral: coll.source()}
			srv := verifiersvc.Server(h)
			serve := func(ctx context.Context, ln net.Listener) error {
				return httpguard.Serve(ctx, srv, ln, verifiersvc.RequestTimeout)
			}
			return serveHTTP(cmd.Context(), cmd.OutOrStdout(), listen, serve, log, "verifier")
		},
	}
	serve.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	serve.Flags().StringArrayVar(&roots, "trust-root", nil, "extra trusted certificates, PEM (repeatable)")
	coll.register(serve)
	c.AddCommand(serve)
	return c
}
