package main

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"certops.dev/certops/gitsource"
	"certops.dev/certops/spec"
)

func newRekeyCommand() *cobra.Command {
	var f daemonFlags
	cmd := &cobra.Command{
		Use:   "rekey",
		Short: "Re-encrypt every owned file to the recipients .sops.yaml names now, in one commit",
		Long: `Rekey re-encrypts every file certops owns (the Secrets under the output folder
and the issuers' account keys) whose recipients differ from those its
.sops.yaml creation rule names now, and pushes them as one commit. Recipients
outside the trusted set (--trusted-recipient) are refused and nothing is
written. The daemon does the same on its own whenever .sops.yaml changes.`,
		Example: `  certops rekey --repo https://git.example.com/platform/certs.git --age-identity age.key \
    --trusted-recipient age1old... --trusted-recipient age1new...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.resolve(cmd.Flags(), os.Getenv); err != nil {
				return err
			}
			log, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			codec, err := f.codec(log)
			if err != nil {
				return err
			}
			repo, err := gitsource.Open(cmd.Context(), f.gitOptions(log))
			if err != nil {
				return err
			}
			defer repo.Close()
			head, err := repo.Sync(cmd.Context())
			if err != nil {
				return err
			}
			fsys, err := repo.Files(head)
			if err != nil {
				return err
			}
			loaded := spec.Load(fsys, spec.LoadOptions{})
			out := loaded.Config.Spec.Output.Path
			files := map[string][]byte{}
			err = fs.WalkDir(fsys, out, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, "/kustomization.yaml") {
					return err
				}
				b, err := fs.ReadFile(fsys, p)
				files[p] = b
				return err
			})
			if err != nil {
				return err
			}
			changed, err := codec.Rekey(cmd.Context(), fsys, files)
			if err != nil {
				return err
			}
			if len(changed) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "✔ all %d file(s) already encrypted to the current recipients\n", len(files))
				return nil
			}
			msg := gitsource.Message{Subject: loaded.Config.Spec.Commit.SubjectPrefix + fmt.Sprintf("rekey %d", len(changed)),
				Body: "Re-encrypt to the recipients .sops.yaml names now."}
			hash, _, err := repo.Commit(cmd.Context(), gitsource.Change{Files: changed, Message: msg,
				Author: &gitsource.Identity{Name: loaded.Config.Spec.Commit.AuthorName, Email: loaded.Config.Spec.Commit.AuthorEmail}})
			if err != nil {
				return err
			}
			if err := repo.Push(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "✔ re-encrypted %d file(s); pushed %s\n", len(changed), short(hash))
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}
