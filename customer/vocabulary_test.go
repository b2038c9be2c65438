package customer_test

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/acme/lifecycle/customer"
)

func TestKnownEventTypes(t *testing.T) {
	assert.Len(t, customer.KnownEventTypes, 25)
	assert.True(t, sort.StringsAreSorted(customer.KnownEventTypes))
	for _, e := range customer.KnownEventTypes {
		assert.True(t, customer.IsKnownEvent(e), e)
	}
	for _, e := range []string{"trial_signup", "email_opened", "deal_won", "erase", "nps_answered"} {
		assert.True(t, customer.IsKnownEvent(e), e)
	}
	for _, e := range []string{"", "Login", "page_view", "trial-signup"} {
		assert.False(t, customer.IsKnownEvent(e), e)
	}
}

func TestStages(t *testing.T) {
	assert.Equal(t, []string{"pending", "trial", "nurture", "sales", "onboarding", "active", "at_risk", "churned", "unsubscribed", "erased"},
		customer.StageNames(), "journey order, the exits last")
	for _, s := range customer.Stages {
		assert.True(t, s.Valid(), s)
	}
	for _, s := range []customer.Stage{"", "Trial", "lead", "at-risk"} {
		assert.False(t, s.Valid(), s)
	}
	names := customer.StageNames()
	names[0] = "changed"
	assert.Equal(t, "pending", customer.StageNames()[0], "each call returns a new slice")
}

func TestLeadSources(t *testing.T) {
	for _, s := range customer.LeadSources {
		assert.True(t, customer.IsLeadSource(s), s)
	}
	for _, s := range []string{"", "Referral", "billboard"} {
		assert.False(t, customer.IsLeadSource(s), s)
	}
}

func TestBlocksMail(t *testing.T) {
	assert.True(t, customer.BlocksMail(customer.ReasonUnsubscribed, customer.CategoryMarketing))
	assert.False(t, customer.BlocksMail(customer.ReasonUnsubscribed, customer.CategoryTransactional),
		"an unsubscribe stops marketing mail only")
	for _, reason := range customer.SuppressionReasons[1:] {
		for _, c := range customer.Categories {
			assert.True(t, customer.BlocksMail(reason, c), "%s blocks %s mail", reason, c)
		}
	}
}
