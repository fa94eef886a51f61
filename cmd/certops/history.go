package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/spf13/cobra"

	"certops.dev/certops/history"
)

func newHistoryCommand() *cobra.Command {
	var output, rev string
	cmd := &cobra.Command{
		Use:   "history [NAME] [PATH]",
		Short: "List every issue, re-issue, renewal and removal with the commit that caused it",
		Long: `History reads, from Git alone, what certops did to each certificate of the
clone at PATH (default: the current directory), oldest first: the time and
commit of each event, serial, not-after, issuer, reason, and the commit that
caused it (the last change of the certificate's spec file at or before the
event: hash, author, date, subject).

NAME ("namespace/name", or "name" for every namespace) keeps one certificate.
With a single argument that is a Git work tree or bare repository, it is PATH.
Nothing is decrypted. A shallow clone is reported as truncated.`,
		Example: `  certops history
  certops history web/web
  certops history web/web ./certs --output json`,
		Args: cobra.MaximumNArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return nil, cobra.ShellCompDirectiveFilterDirs
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, dir := "", "."
			switch len(args) {
			case 2:
				name, dir = args[0], args[1]
			case 1:
				if isGitDir(args[0]) {
					dir = args[0]
				} else {
					name = args[0]
				}
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("--output: %q is not table or json", output)
			}
			repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
			if err != nil {
				return fmt.Errorf("opening the Git repository at %s: %w", dir, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "► reading the history of %s\n", dir)
			h, err := history.Read(cmd.Context(), repo, history.Options{Name: name, Rev: rev})
			if err != nil {
				return err
			}
			if h.Truncated {
				fmt.Fprintln(cmd.ErrOrStderr(), "✗ shallow clone: the history is truncated; events and causes older than its boundary are missing (git fetch --unshallow)")
			}
			if name != "" && len(h.Events) == 0 {
				return fmt.Errorf("no event for certificate %s in %s", name, dir)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "✔ %d event(s)\n", len(h.Events))
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(h)
			}
			return printHistory(cmd, h)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	cmd.Flags().StringVar(&rev, "rev", "HEAD", "the revision to read from")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func isGitDir(p string) bool {
	if fi, err := os.Stat(filepath.Join(p, ".git")); err == nil && fi != nil {
		return true
	}
	fi, err := os.Stat(filepath.Join(p, "HEAD"))
	return err == nil && !fi.IsDir()
}

func printHistory(cmd *cobra.Command, h *history.History) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tCOMMIT\tCERTIFICATE\tACTION\tREASON\tSERIAL\tNOT AFTER\tISSUER\tCAUSE\tAUTHOR\tSUBJECT")
	day := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, e := range h.Events {
		cause, author, subject := "-", "-", "-"
		if c := e.Cause; c != nil {
			cause, author, subject = c.Commit[:12], fmt.Sprintf("%s <%s>", c.Author, c.Email), c.Subject
			if c.Boundary {
				cause += " (shallow edge)"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", day(e.Time), e.Commit[:12], e.Certificate,
			e.Action, e.Reason, dash(e.Serial), day(e.NotAfter), dash(e.Issuer), cause, author, subject)
	}
	return w.Flush()
}
