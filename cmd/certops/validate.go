package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"certops.dev/certops/spec"
)

type loadFlags struct {
	policyFile string
}

func (f *loadFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.policyFile, "policy", "", "a policy file from outside the repository (kind: Policy); the repository can narrow it, never widen it")
}

// load reads the repository at dir with the external policy, if any.
func (f *loadFlags) load(dir string) (*spec.Repository, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("reading repository: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("reading repository: %s is not a directory", dir)
	}
	var opts spec.LoadOptions
	if f.policyFile != "" {
		data, err := os.ReadFile(f.policyFile)
		if err != nil {
			return nil, fmt.Errorf("reading policy: %w", err)
		}
		p, problems := spec.LoadPolicy(f.policyFile, data)
		if len(problems) > 0 {
			msgs := make([]string, len(problems))
			for i, p := range problems {
				msgs[i] = p.Error()
			}
			return nil, fmt.Errorf("policy file is invalid:\n  %s", strings.Join(msgs, "\n  "))
		}
		opts.ExternalPolicy = p
	}
	return spec.Load(os.DirFS(dir), opts), nil
}

func newValidateCommand() *cobra.Command {
	var lf loadFlags
	var output string
	cmd := &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check every spec in a certificate repository",
		Long: `Validate reads certops.yaml, issuers/ and certificates/ under PATH (default:
the current directory) strictly and reports every problem at once, each with
its file, line, column and field path: unknown or misspelt fields, wrong types,
duplicate keys, invalid names, durations and keys, issuers that do not exist,
two certificates writing one Secret, and policy violations.

It exits 0 when everything is valid and 1 when anything is not. It needs no
key, no network and no cluster, so it runs in a pull request's CI.`,
		Example: `  # check the repository in the current directory
  certops validate

  # in GitHub Actions: annotate the pull request's files
  certops validate --output github

  # with the platform team's policy from outside the repository
  certops validate --policy /etc/certops/policy.yaml ./certs-repo`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			repo, err := lf.load(dir)
			if err != nil {
				return err
			}
			if err := writeProblems(cmd.OutOrStdout(), output, repo); err != nil {
				return err
			}
			if len(repo.Problems) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "✗ %d problem(s); %d certificate(s) and %d issuer(s) valid\n",
					len(repo.Problems), len(repo.Certificates), len(repo.Issuers))
				return &exitError{code: 1}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "✔ %d certificate(s) and %d issuer(s) valid\n", len(repo.Certificates), len(repo.Issuers))
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or github (workflow command annotations)")
	return cmd
}

func writeProblems(w io.Writer, format string, repo *spec.Repository) error {
	switch format {
	case "text":
		for _, p := range repo.Problems {
			fmt.Fprintln(w, p.Error())
		}
	case "json":
		out := struct {
			Valid        bool           `json:"valid"`
			Certificates int            `json:"certificates"`
			Issuers      int            `json:"issuers"`
			Problems     []spec.Problem `json:"problems"`
		}{len(repo.Problems) == 0, len(repo.Certificates), len(repo.Issuers), repo.Problems}
		if out.Problems == nil {
			out.Problems = []spec.Problem{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "github":
		for _, p := range repo.Problems {
			props := "file=" + ghProperty(p.File)
			if p.Line > 0 {
				props += fmt.Sprintf(",line=%d", p.Line)
			}
			if p.Column > 0 {
				props += fmt.Sprintf(",col=%d", p.Column)
			}
			msg := p.Message
			if p.Field != "" {
				msg = p.Field + ": " + msg
			}
			fmt.Fprintf(w, "::error %s,title=certops validate::%s\n", props, ghData(msg))
		}
	default:
		return fmt.Errorf("unknown output format %q (expected text, json or github)", format)
	}
	return nil
}

// ghData and ghProperty escape GitHub Actions workflow command values.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
