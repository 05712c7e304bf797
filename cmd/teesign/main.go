// Command teesign provisions attested signing keys in a confidential VM,
// serves signatures to its containers, and verifies them anywhere.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	if ee, ok := err.(*exitError); !ok || ee.err != nil {
		fmt.Fprintln(os.Stderr, "teesign:", err)
	}
	os.Exit(exitCode(err))
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "teesign",
		Short:         "Attested signing keys for confidential VMs (Intel TDX, AMD SEV-SNP)",
		Long:          "teesign creates signing keys inside a confidential VM, binds them into hardware attestation quotes,\nsigns for the VM's containers over the Docker bridge, and verifies signatures against the quote.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newProvisionCmd(), newServeCmd(), newSignCmd(), newQuoteCmd(), newVerifyCmd(), newVerifierCmd(), newPolicyCmd(), newWorkloadCmd())
	markUsage(root)
	return root
}
