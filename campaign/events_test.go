package campaign

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestKnownEventTypes(t *testing.T) {
	assert.Len(t, KnownEventTypes, 23)
	assert.True(t, sort.StringsAreSorted(KnownEventTypes))
	for _, e := range KnownEventTypes {
		assert.True(t, IsKnownEvent(e), e)
	}
	for _, e := range []string{"trial_signup", "email_opened", "deal_won", "erase", "nps_answered"} {
		assert.True(t, IsKnownEvent(e), e)
	}
	for _, e := range []string{"", "Login", "page_view", "trial-signup"} {
		assert.False(t, IsKnownEvent(e), e)
	}
}

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
