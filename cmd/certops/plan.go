package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"certops.dev/certops/spec"
)

func newPlanCommand() *cobra.Command {
	var lf loadFlags
	var output, at string
	cmd := &cobra.Command{
		Use:   "plan [PATH]",
		Short: "Show what the next pass would issue, renew, re-issue or remove",
		Long: `Plan reads the specs under PATH (default: the current directory) and the
clear-text metadata of the encrypted Secret files certops wrote, and prints
what the next pass would do with each certificate. It decrypts nothing and
needs no key, so it runs in a pull request's CI next to validate.

ACTION is issue, reissue, renew, remove or none; REASON follows cert-manager's
trigger policies: DoesNotExist, IssuerChanged, SpecChanged, ManuallyTriggered,
Expired, Renewing (and Deleted, UpToDate). Invalid specs are reported on
stderr and left out: their Secrets are held, never removed.

KeyMismatch (a tls.key that does not belong to its tls.crt) and adoption of a
keypair committed by hand need to decrypt, so only a pass finds them; plan
shows such a certificate as UpToDate or DoesNotExist.`,
		Example: `  certops plan
  certops plan --output json ./certs-repo | jq '.[] | select(.decision.action != "none")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			now := time.Now()
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				now = t
			}
			repo, err := lf.load(dir)
			if err != nil {
				return err
			}
			entries, problems := spec.Plan(os.DirFS(dir), repo, now)
			for _, p := range append(repo.Problems, problems...) {
				fmt.Fprintln(cmd.ErrOrStderr(), "! skipped: "+p.Error())
			}
			switch output {
			case "json":
				if entries == nil {
					entries = []spec.PlanEntry{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			case "text", "table":
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tISSUER\tACTION\tREASON\tNOT AFTER\tRENEW AT\tTARGETS")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Issuer, e.Decision.Action, e.Decision.Reason,
						fmtTime(e.NotAfter), fmtTime(e.Decision.RenewAt), fmtTargets(e.Targets))
				}
				return tw.Flush()
			default:
				return fmt.Errorf("unknown output format %q (expected text or json)", output)
			}
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&at, "at", "", "plan as of this time (RFC 3339) instead of now")
	return cmd
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04Z")
}

func fmtTargets(ts []spec.ResolvedTarget) string {
	if len(ts) == 0 {
		return "(git only)"
	}
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.Cluster + "/" + t.Namespace
	}
	return strings.Join(s, ",")
}
