package campaign

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// validBase parses testdata/valid.yaml afresh (tests mutate it).
func validBase(t *testing.T) *Campaign {
	t.Helper()
	data, err := os.ReadFile("testdata/valid.yaml")
	require.NoError(t, err)
	c, err := Parse(data, "testdata/valid.yaml")
	require.NoError(t, err)
	return c
}

// embeddedSaaS loads the shipped saas-lifecycle campaign.
func embeddedSaaS(t *testing.T) *Campaign {
	t.Helper()
	r := NewRegistry()
	require.NoError(t, r.LoadEmbedded())
	c, err := r.Get("saas-lifecycle", "v1")
	require.NoError(t, err)
	return c
}

// joined splits an errors.Join error into its messages.
func joined(err error) []string {
	if err == nil {
		return nil
	}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	require.NoError(t, err)
	return loc
}
