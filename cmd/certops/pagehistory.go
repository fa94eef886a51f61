package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-git/go-git/v5"

	"certops.dev/certops/history"
)

// gitHistory reads the status page's issuance history from the daemon's
// Git cache with package history. It reads every certificate's events once
// per head commit and serves each page request from that copy, so a page
// over thousands of certificates costs one walk per new commit, not one per
// certificate. It opens the bare clone with a handle of its own, never
// sharing go-git's readers with a running pass.
type gitHistory struct {
	gitDir string
	head   func() (string, error)

	mu     sync.Mutex
	seen   string                    // head the cache was read at
	byName map[string][]historyEntry // newest first
}

func newGitHistory(gitDir string, head func() (string, error)) *gitHistory {
	return &gitHistory{gitDir: gitDir, head: head}
}

// Events implements historyReader.
func (g *gitHistory) Events(ctx context.Context, name string) ([]historyEntry, error) {
	head, err := g.head()
	if err != nil {
		return nil, err
	}
	if head == "" {
		return nil, nil // nothing fetched yet
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if head != g.seen {
		repo, err := git.PlainOpen(g.gitDir)
		if err != nil {
			return nil, fmt.Errorf("opening the Git cache: %w", err)
		}
		h, err := history.Read(ctx, repo, history.Options{Rev: head})
		if err != nil {
			return nil, err
		}
		byName := map[string][]historyEntry{}
		for i := len(h.Events) - 1; i >= 0; i-- { // oldest first → newest first
			e := h.Events[i]
			byName[e.Certificate] = append(byName[e.Certificate], historyEntry{
				Time: e.Time, Commit: e.Commit, Serial: e.Serial, NotAfter: e.NotAfter, Issuer: e.Issuer, Reason: e.Reason,
			})
		}
		g.seen, g.byName = head, byName
	}
	return g.byName[name], nil
}
