package campaign

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsActivity(t *testing.T) {
	c := embeddedSaaS(t)
	for _, e := range []string{"login", "feature_used", "support_ticket", "nps_answered", "purchase"} {
		assert.True(t, c.IsActivity(e), e)
	}
	for _, e := range []string{"email_opened", "pricing_viewed", "unsubscribe", ""} {
		assert.False(t, c.IsActivity(e), e)
	}
	var nilC *Campaign
	assert.False(t, nilC.IsActivity("login"))
}
