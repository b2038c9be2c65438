package customer_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/acme/lifecycle/customer"
)

func TestCheckTag(t *testing.T) {
	for _, ok := range []string{"webinar-2026", "product:analytics", "a", "vip.2026_q1", strings.Repeat("a", 64)} {
		assert.NoError(t, customer.CheckTag("tag", ok), ok)
	}
	for _, bad := range []string{"", "Webinar", "-lead", "has space", "x\x00", strings.Repeat("a", 65), "émigré"} {
		assert.Error(t, customer.CheckTag("tag", bad), "%q", bad)
	}
	err := customer.CheckTags("tags", []string{"ok", "Not-OK"})
	assert.ErrorContains(t, err, "tags[1]")
	assert.Error(t, customer.CheckTags("tags", make([]string, customer.MaxTagsPerChange+1)))
}
