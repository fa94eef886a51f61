package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "certops",
		Short: "TLS certificates as code: issue once, commit encrypted, apply to many clusters",
		Long: `certops keeps TLS certificates as code. It reads Certificate and Issuer specs
(cert-manager's field names) from a Git repository, issues or renews each
certificate through its issuer (ACME, private CA, self-signed, Vault PKI, exec),
commits the keypair back to the same repository encrypted with SOPS, and
applies it as a Kubernetes Secret to every cluster and namespace it targets.

Git is the source of truth and the audit log: a pull request is the request,
certops' commit is the issuance record, and any cluster can be rebuilt from Git
without issuing again.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newValidateCommand(),
		newPlanCommand(),
		newReconcileCommand(),
		newRunCommand(),
		newStatusCommand(),
		newInitCommand(),
		newExportCommand(),
		newRenewCommand(),
		newHistoryCommand(),
		newInspectCommand(),
		newRekeyCommand(),
		newIssuersCommand(),
		newVersionCommand(),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print certops' version",
		Example: "  certops version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "certops", buildVersion())
			return nil
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
