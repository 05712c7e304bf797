package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/atomicfile"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/signer"
)

func newSignCmd() *cobra.Command {
	var server, keyType, enc, format, bundleFile string
	c := &cobra.Command{
		Use:   "sign [--server URL] [--key-type ALG] [--payload-encoding ENC] [--format FMT] [--bundle FILE] PAYLOAD",
		Short: "Ask the signing server for a signature and print it (base64, or 0x-hex for the Ethereum formats)",
		Long: "Ask the signing server for a signature and print it.\n\n" +
			"With --bundle FILE, also write the verification bundle: the signature with the quote and public key\n" +
			"that prove where it came from, in one file that `teesign verify --bundle FILE` (or the verifier's page) checks.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := map[string]any{"key_type": keyType, "payload": args[0], "payload_encoding": enc, "format": format}
			if format == signer.FormatEthRaw {
				delete(req, "payload_encoding") // the payload is the digest in hex
			}
			if bundleFile != "" {
				req["bundle"] = true
			}
			body, _ := json.Marshal(req)
			client := &http.Client{Timeout: 10 * time.Second}
			hreq, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, server+"/sign", bytes.NewReader(body))
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			hreq.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(hreq)
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			var out struct {
				Signature string          `json:"signature"`
				Error     string          `json:"error"`
				Bundle    json.RawMessage `json:"bundle"`
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("sign: server answered %s with a body that is not JSON", resp.Status)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("sign: server answered %s: %s", resp.Status, out.Error)
			}
			if bundleFile != "" {
				b, err := bundle.Decode(out.Bundle)
				if err != nil {
					return fmt.Errorf("sign: the server's bundle: %w (is the server older than --bundle?)", err)
				}
				text, err := b.Marshal()
				if err != nil {
					return err
				}
				if err := atomicfile.Write(bundleFile, text, 0o644); err != nil {
					return fmt.Errorf("sign: --bundle: %w", err)
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Signature)
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "http://"+signer.DefaultListenAddr(), "signing server URL")
	c.Flags().Var(newEnum(&keyType, "secp256k1", "secp256k1", "ed25519"), "key-type", "key type: secp256k1 or ed25519")
	c.Flags().Var(newEnum(&enc, "utf8", "utf8", "base64", "hex"), "payload-encoding", "how PAYLOAD is encoded: utf8, base64 or hex")
	c.Flags().Var(newEnum(&format, signer.FormatDER, signer.FormatDER, signer.FormatEthPersonalSign, signer.FormatEthRaw), "format", "signature format: der, eth_personal_sign or eth_raw (PAYLOAD is then the 32-byte digest in hex); the Ethereum formats need secp256k1")
	c.Flags().StringVar(&bundleFile, "bundle", "", "also write the verification bundle (signature, message, quote and public key) to FILE")
	return c
}

func newQuoteCmd() *cobra.Command {
	c := &cobra.Command{Use: "quote", Short: "Work with attestation quotes"}
	c.AddCommand(&cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a quote's parsed fields as JSON (lowercase hex)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			raw, kind, err := quote.Decode(text)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			_, fields, err := quote.Parse(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fields["tee"] = string(kind)
			if n := quote.Note(text); n != "" {
				fields["note"] = n
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(fields)
		},
	})
	return c
}
