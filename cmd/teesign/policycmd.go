package main

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/validate"
)

func newPolicyCmd() *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Write verification policies"}
	var composeFiles []string
	from := &cobra.Command{
		Use:   "from-quote FILE [--compose FILE]...",
		Short: "Print a policy pinning a known-good quote's measurements (YAML)",
		Long: "Print a policy that pins the measurements of a quote you trust: for TDX tee_tcb_svn, mr_seam, mr_td and\n" +
			"rtmr0-3; for SEV-SNP measurement and host_data. With --compose, rtmr3 is computed from the compose files\n" +
			"the way the VM extends it, so the policy pins that workload.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return usageErr(err)
			}
			raw, kind, err := quote.Decode(text)
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", args[0], err))
			}
			_, f, err := quote.Parse(raw)
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", args[0], err))
			}
			pin := func(names ...string) map[string][]string {
				m := map[string][]string{}
				for _, n := range names {
					m[n] = []string{fmt.Sprint(f[n])}
				}
				return m
			}
			p := &validate.Policy{}
			if kind == quote.TDX {
				p.Tdx = pin("tee_tcb_svn", "mr_seam", "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
				if len(composeFiles) > 0 {
					var contents [][]byte
					for _, cf := range composeFiles {
						b, err := os.ReadFile(cf)
						if err != nil {
							return usageErr(err)
						}
						contents = append(contents, b)
					}
					p.Tdx["rtmr3"] = []string{hex.EncodeToString(validate.ComposeRTMR3(contents...))}
				}
			} else {
				p.SevSnp = pin("measurement", "host_data")
			}
			out, err := yaml.Marshal(p)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	from.Flags().StringArrayVar(&composeFiles, "compose", nil, "compose file whose digest RTMR3 must carry (repeatable, in order)")
	c.AddCommand(from)
	return c
}
