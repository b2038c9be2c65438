package campaign

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse: any input gives a campaign that validates or an error, never a
// panic. Run longer with: go test ./campaign -fuzz FuzzParse
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type result struct {
			c   *Campaign
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := Parse(data, "fuzz.yaml")
			done <- result{c, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("Parse hangs on %q", data)
		}
		c, err := r.c, r.err
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted an invalid campaign: %v", verr)
			}
		}
	})
}

// FuzzDurationRoundTrip: FormatDuration's output always parses back.
func FuzzDurationRoundTrip(f *testing.F) {
	for _, d := range []int64{0, 1, int64(time.Hour), int64(36 * time.Hour), -int64(72 * time.Hour), 1<<63 - 1} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		d := time.Duration(n)
		if d == -1<<63 {
			return
		}
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("%d: %q -> %d, %v", n, FormatDuration(d), back, err)
		}
	})
}
