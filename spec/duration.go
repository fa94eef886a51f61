package spec

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Duration is a Go duration string in YAML ("2160h", "90m", "1h30m"), as in
// cert-manager's metav1.Duration fields.
type Duration struct {
	time.Duration
}

func (d *Duration) unmarshalScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("expected a duration such as \"2160h\" or \"90m\", got %q", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return d.unmarshalScalar(s)
}

func sortStrings(s []string) { slices.Sort(s) }
