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

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/internal/signer"
)

func newSignCmd() *cobra.Command {
	var server, keyType, enc string
	c := &cobra.Command{
		Use:   "sign [--server URL] [--key-type ALG] [--payload-encoding ENC] PAYLOAD",
		Short: "Ask the signing server for a signature and print it (base64)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, _ := json.Marshal(map[string]string{"key_type": keyType, "payload": args[0], "payload_encoding": enc})
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Post(server+"/sign", "application/json", bytes.NewReader(body))
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			var out struct {
				Signature string `json:"signature"`
				Error     string `json:"error"`
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("sign: server answered %s with a body that is not JSON", resp.Status)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("sign: server answered %s: %s", resp.Status, out.Error)
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Signature)
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "http://"+signer.DefaultListenAddr(), "signing server URL")
	c.Flags().Var(newEnum(&keyType, "secp256k1", "secp256k1", "ed25519"), "key-type", "key type: secp256k1 or ed25519")
	c.Flags().Var(newEnum(&enc, "utf8", "utf8", "base64", "hex"), "payload-encoding", "how PAYLOAD is encoded: utf8, base64 or hex")
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
