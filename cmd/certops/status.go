package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"certops.dev/certops/reconciler"
	"certops.dev/certops/spec"
)

func newStatusCommand() *cobra.Command {
	var server, output string
	var lf loadFlags
	cmd := &cobra.Command{
		Use:   "status [PATH]",
		Short: "Show every certificate's state, from a running daemon or offline from a checkout",
		Long: `Status prints one row per certificate: NAME, READY, REASON, ISSUER, NOT AFTER,
RENEW AT and MESSAGE. With --server it asks a running daemon's status API
(conditions, last error, retry time); without it, it reads the repository at
PATH (default: the current directory) offline, from the clear-text metadata of
the encrypted Secret files, and decrypts nothing.`,
		Example: `  certops status --server http://certops.certops-system:9402
  certops status ./certs-repo -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st reconciler.Status
			if server != "" {
				resp, err := http.Get(strings.TrimRight(server, "/") + "/api/v1/status")
				if err != nil {
					return fmt.Errorf("asking the daemon: %w", err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("asking the daemon: %s", resp.Status)
				}
				if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
					return fmt.Errorf("reading the daemon's status: %w", err)
				}
			} else {
				dir := "."
				if len(args) == 1 {
					dir = args[0]
				}
				repo, err := lf.load(dir)
				if err != nil {
					return err
				}
				entries, problems := spec.Plan(os.DirFS(dir), repo, time.Now())
				st = offlineStatus(entries, append(repo.Problems, problems...))
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			for _, p := range st.Problems {
				fmt.Fprintln(cmd.ErrOrStderr(), "! invalid: "+p.Error())
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREADY\tREASON\tISSUER\tNOT AFTER\tRENEW AT\tMESSAGE")
			for _, c := range st.Certificates {
				ready, reason, msg := "Unknown", "", ""
				for _, cond := range c.Conditions {
					if cond.Type == "Ready" {
						ready, reason, msg = string(cond.Status), cond.Reason, cond.Message
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, ready, reason, c.Issuer, fmtTime(c.NotAfter), fmtTime(c.RenewAt), msg)
			}
			return tw.Flush()
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&server, "server", "", "URL of a running daemon's status endpoint (its --listen address)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// offlineStatus turns a plan into the status shape: a certificate with
// nothing due is Ready; one that is due is not, with the plan's reason.
func offlineStatus(entries []spec.PlanEntry, problems []spec.Problem) reconciler.Status {
	st := reconciler.Status{Problems: problems, Certificates: []reconciler.CertificateStatus{}}
	now := metav1.Now()
	for _, e := range entries {
		cs := reconciler.CertificateStatus{CertResult: reconciler.CertResult{Name: e.Name, File: e.File, Issuer: e.Issuer,
			Action: e.Decision.Action, Reason: e.Decision.Reason, NotBefore: e.NotBefore, NotAfter: e.NotAfter,
			RenewAt: e.Decision.RenewAt}}
		ready := metav1.Condition{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: meta.SucceededReason,
			Message: "valid until " + fmtTime(e.NotAfter), LastTransitionTime: now}
		if e.Decision.Action != spec.ActionNone {
			ready.Status, ready.Reason = metav1.ConditionFalse, string(e.Decision.Reason)
			ready.Message = fmt.Sprintf("%s due: %s", e.Decision.Action, e.Decision.Message)
		}
		cs.Conditions = []metav1.Condition{ready}
		st.Certificates = append(st.Certificates, cs)
	}
	return st
}
