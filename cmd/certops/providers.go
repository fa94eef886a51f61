package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"certops.dev/certops/reconciler/issuer/acme/dnsproviders"
)

func newIssuersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuers",
		Short: "Facts about the issuer backends built into this binary",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "providers",
		Short: "List the DNS-01 providers an ACME issuer can name in dns01.provider",
		Long: `Providers lists the lego DNS providers built into certops, by the name an ACME
issuer's dns01.provider takes, then the cert-manager names accepted as aliases.
Each provider reads its credentials from its lego environment variables (or
files named by the same variables with a _FILE suffix) on the daemon's host,
never from the repository.`,
		Example: "  certops issuers providers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range dnsproviders.List() {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			for _, a := range dnsproviders.Aliases() {
				fmt.Fprintln(cmd.OutOrStdout(), "alias "+a)
			}
			return nil
		},
	})
	return cmd
}
