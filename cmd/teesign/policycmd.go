package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/go-json-experiment/json"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/workload"
)

func newPolicyCmd() *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Write verification policies"}
	var wf workloadFlags
	var asJSON bool
	from := &cobra.Command{
		Use:   "from-quote FILE [--compose FILE]...",
		Short: "Print a policy pinning a known-good quote's measurements (YAML)",
		Long: "Print a policy that pins the measurements of a quote you trust: for TDX mr_seam, mr_td, rtmr0-3 and\n" +
			"min_tee_tcb_svn; for SEV-SNP measurement, host_data, vmpl, min_guest_svn and min_reported_tcb. With\n" +
			"--compose, the quote must be an official build (the registry: --registry, or the embedded one) whose\n" +
			"RTMR3 or launch digest replays from that compose file, or the command fails: a policy made from it\n" +
			"pins that workload. A hygiene rule the quote itself breaks is named on stderr, not relaxed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			raw, kind, err := quote.Decode(text)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			reg, wl, err := wf.load()
			if err != nil {
				return err
			}
			if wl != nil {
				res, err := checkQuoteWorkload(reg, *wl, text)
				if err != nil {
					return err
				}
				if res.Status != workload.AuthenticMatch {
					return fmt.Errorf("%s: the quote is %s for this compose file (%s): a policy pinning this workload would reject the quote it was made from", args[0], res.Status, res.Reason)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "teesign: the quote is SecretVM %s %s (%s) running this compose file\n", res.Template, res.ArtifactsVersion, res.Env)
			}
			p := &validate.Policy{}
			var checkErr error
			if kind == quote.TDX {
				q, err := quote.ParseTDX(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				tq, err := validate.TDXQuoteOf(q)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				one := func(b []byte) []validate.Hex { return []validate.Hex{b} }
				p.TDX = &validate.TDXPolicy{
					MRSeam: one(tq.MRSeam), MRTD: one(tq.MRTD), RTMR0: one(tq.RTMR[0]), RTMR1: one(tq.RTMR[1]),
					RTMR2: one(tq.RTMR[2]), RTMR3: one(tq.RTMR[3]), MinTeeTCBSVN: tq.TeeTCBSVN,
				}
				checkErr = p.CheckTDX(tq)
			} else {
				r, err := quote.ParseSNP(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				sr := validate.SNPReportOf(r)
				tcb := validate.TCBFromVersion(sr.ReportedTCB)
				svn := sr.GuestSVN
				p.SEVSNP = &validate.SNPPolicy{
					Measurement: []validate.Hex{sr.Measurement}, HostData: []validate.Hex{sr.HostData},
					VMPL: []uint32{sr.VMPL}, MinGuestSVN: &svn, MinReportedTCB: &tcb,
				}
				checkErr = p.CheckSNP(sr)
			}
			var verr *validate.Error
			if errors.As(checkErr, &verr) {
				for _, v := range verr.Violations {
					fmt.Fprintf(cmd.ErrOrStderr(), "teesign: warning: the quote itself fails %s: %s\n", v.Rule, v.Detail)
				}
			}
			j, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if asJSON {
				_, err = cmd.OutOrStdout().Write(append(j, '\n'))
				return err
			}
			out, err := yaml.JSONToYAML(j)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	from.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of YAML (the form POST /verify takes as \"policy\")")
	wf.register(from, "the compose file the quote's VM runs: checked against the registry before the policy is written (repeatable: concatenated in order)")
	c.AddCommand(from)
	return c
}
