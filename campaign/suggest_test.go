package campaign

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSuggest(t *testing.T) {
	options := []string{"type", "threshold", "review_ask", "referral", "pricing_viewed"}
	for typo, want := range map[string]string{
		"tpye":            "type",           // a swap is two edits
		"tresholt":        "threshold",      // two edits
		"reveiw_ask":      "review_ask",     //nolint:misspell // the typo is the input: longer words allow a third of their length
		"refferal":        "referral",       // one edit
		"priceing_viewed": "pricing_viewed", // one edit
	} {
		assert.Equal(t, ` (did you mean "`+want+`"?)`, Suggest(typo, options), typo)
	}
	for _, far := range []string{"webinar", "x", "thresholds_and_more"} {
		assert.Empty(t, Suggest(far, options), far)
	}
	assert.Empty(t, Suggest("type", nil), "no options, no suggestion")
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"type", "tpye", 2}, {"same", "same", 0}} {
		assert.Equal(t, c.d, editDistance(c.a, c.b), "%q %q", c.a, c.b)
		assert.Equal(t, c.d, editDistance(c.b, c.a), "symmetric: %q %q", c.b, c.a)
	}
}
