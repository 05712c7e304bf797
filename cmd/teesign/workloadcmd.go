package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/workload"
)

// workloadFlags name a workload and the registry to check it against.
type workloadFlags struct {
	compose         []string
	registry        string
	dockerFiles     string
	dockerFilesHash string
}

func (w *workloadFlags) register(c *cobra.Command, composeHelp string) {
	c.Flags().StringArrayVar(&w.compose, "compose", nil, composeHelp)
	c.Flags().StringVar(&w.registry, "registry", "", "folder holding SecretVM's registry of builds (tdx.csv, sev.json), e.g. STATE/sim-registry for a simulated TEE (default: the registry embedded in teesign)")
	c.Flags().StringVar(&w.dockerFiles, "docker-files", "", "the docker-files archive the VM was given (its SHA-256 is measured)")
	c.Flags().StringVar(&w.dockerFilesHash, "docker-files-sha256", "", "the SHA-256 of that archive, hex")
	c.MarkFlagsMutuallyExclusive("docker-files", "docker-files-sha256")
}

// load reads the registry and the workload; nil when no --compose is given.
func (w *workloadFlags) load() (*workload.Registry, *workload.Workload, error) {
	if len(w.compose) == 0 {
		if w.dockerFiles != "" || w.dockerFilesHash != "" || w.registry != "" {
			return nil, nil, fmt.Errorf("--docker-files, --docker-files-sha256 and --registry go with --compose")
		}
		return nil, nil, nil
	}
	var wl workload.Workload
	for _, f := range w.compose {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		wl.Compose = append(wl.Compose, b...)
	}
	switch {
	case w.dockerFiles != "":
		b, err := os.ReadFile(w.dockerFiles)
		if err != nil {
			return nil, nil, err
		}
		d := sha256.Sum256(b)
		wl.DockerFilesSHA256 = d[:]
	case w.dockerFilesHash != "":
		d, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(w.dockerFilesHash), "0x"))
		if err != nil || len(d) != 32 {
			return nil, nil, fmt.Errorf("--docker-files-sha256: want 64 hex digits")
		}
		wl.DockerFilesSHA256 = d
	}
	var reg *workload.Registry
	var err error
	if w.registry != "" {
		reg, err = workload.Load(w.registry)
	} else {
		reg, err = workload.Embedded()
	}
	if err != nil {
		return nil, nil, err
	}
	return reg, &wl, nil
}

// checkQuoteWorkload runs the workload check on a quote file's bytes.
func checkQuoteWorkload(reg *workload.Registry, wl workload.Workload, text []byte) (workload.Result, error) {
	raw, _, err := quote.Decode(text)
	if err != nil {
		return workload.Result{}, err
	}
	return reg.CheckQuote(raw, wl)
}

func newWorkloadCmd() *cobra.Command {
	var quoteFile string
	var wf workloadFlags
	c := &cobra.Command{
		Use:   "workload --quote FILE --compose FILE [--docker-files FILE | --docker-files-sha256 HEX] [--registry DIR]",
		Short: "Tell which SecretVM build a quote comes from and whether it runs this compose file",
		Long: "Check a quote's launch measurements against SecretVM's registry of official builds and replay the\n" +
			"workload's measurement (TDX RTMR3, SEV-SNP launch digest) from the compose file. Prints JSON\n" +
			"{status, tee, template, artifacts_version, env}; status is authentic_match, authentic_mismatch or\n" +
			"not_authentic. It checks measurements only: `teesign verify --compose` also checks that the quote is\n" +
			"genuine. Exit 0 only for authentic_match, 1 otherwise, 2 on usage errors.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, wl, err := wf.load()
			if err != nil {
				return err
			}
			text, err := os.ReadFile(quoteFile)
			if err != nil {
				return err
			}
			res, err := checkQuoteWorkload(reg, *wl, text)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(res); err != nil {
				return err
			}
			if res.Status != workload.AuthenticMatch {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	c.Flags().StringVar(&quoteFile, "quote", "", "quote file (raw, hex or base64)")
	c.MarkFlagRequired("quote")
	wf.register(c, "the docker-compose file the VM runs, bytes exactly as given (repeatable: concatenated in order)")
	c.MarkFlagRequired("compose")
	return c
}
