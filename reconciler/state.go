package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Backoff bounds, cert-manager's: a failed issuance is retried after 1h,
// then 2h, 4h, … up to 32h; a spec change resets it.
const (
	DefaultBackoffMin = time.Hour
	DefaultBackoffMax = 32 * time.Hour
)

// certState is what the daemon remembers about one certificate between
// passes and restarts. It holds no key material.
type certState struct {
	// Fingerprint is the spec hash and issuer spec the failures were for; a
	// different one resets the backoff.
	Fingerprint string    `json:"fingerprint"`
	Failures    int       `json:"failures"`
	Permanent   bool      `json:"permanent,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	LastFailure time.Time `json:"lastFailure,omitzero"`
	NextRetry   time.Time `json:"nextRetry,omitzero"`
	// Notified is the signature of the failure last notified (error and
	// backoff step), so the same failure is not notified every attempt.
	Notified string `json:"notified,omitempty"`
}

// persisted is the state file's content.
type persisted struct {
	Version int                   `json:"version"`
	Certs   map[string]*certState `json:"certificates"`
}

const stateFile = "state.json"

func loadState(dir string) (map[string]*certState, error) {
	if dir == "" {
		return map[string]*certState{}, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*certState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reconciler: reading state: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		// A torn or foreign file must not stop the daemon: start afresh.
		return map[string]*certState{}, nil
	}
	if p.Certs == nil {
		p.Certs = map[string]*certState{}
	}
	return p.Certs, nil
}

// saveState writes the state atomically, so a crash leaves either the old
// or the new state.
func saveState(dir string, certs map[string]*certState) error {
	if dir == "" {
		return nil
	}
	data, err := json.MarshalIndent(persisted{Version: 1, Certs: certs}, "", "  ")
	if err != nil {
		return fmt.Errorf("reconciler: writing state: %w", err)
	}
	if err := writeAtomic(dir, stateFile, data); err != nil {
		return fmt.Errorf("reconciler: writing state: %w", err)
	}
	return nil
}

// writeAtomic replaces dir/name with data through a temporary file, fsync
// and rename.
func writeAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// backoffAfter is the wait after the n-th consecutive failure: min·2ⁿ⁻¹,
// capped at max.
func backoffAfter(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	return d
}
