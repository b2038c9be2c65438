package campaign

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/acme/lifecycle/customer"
)

func TestFitPoints(t *testing.T) {
	s := embeddedSaaS(t).Scoring
	cases := []struct {
		source string
		size   int
		role   string
		want   int
		why    []Reason
	}{
		{"referral", 250, "VP Engineering", 43, []Reason{{"source:referral", 25}, {"company_size", 10}, {"role:vp_engineering", 8}}},
		{"current_customer", 5000, " CTO ", 55, []Reason{{"source:current_customer", 30}, {"company_size", 15}, {"role:cto", 10}}},
		{" Search Ads ", 60, "", 10, []Reason{{"source:search_ads", 5}, {"company_size", 5}}},
		{"", 10, "intern", 0, nil}, // unknown source counts as cold (0 points)
		{"billboard", 1000, "head of data", 23, []Reason{{"company_size", 15}, {"role:head_of_data", 8}}},
		{"expert", 49, "Engineer", 13, []Reason{{"source:expert", 10}, {"role:engineer", 3}}},
	}
	for _, tc := range cases {
		got, why := s.FitPoints(tc.source, tc.size, tc.role)
		assert.Equal(t, tc.want, got, "%+v", tc)
		assert.Equal(t, tc.why, why, "%+v", tc)
	}
	// A campaign that gives cold leads points shows them.
	s.SourcePoints = map[string]int{"cold": -5}
	got, why := s.FitPoints("unknown", 0, "")
	assert.Equal(t, -5, got)
	assert.Equal(t, []Reason{{"source:cold", -5}}, why)
}

func TestNormalizeRole(t *testing.T) {
	for in, want := range map[string]string{
		"CTO": "cto", "  VP  Engineering ": "vp_engineering", "Head of Data": "head_of_data",
		"vp-engineering": "vp_engineering", "": "", "Sales/Ops": "sales_ops",
	} {
		assert.Equal(t, want, NormalizeRole(in), in)
	}
}

func TestEventPointsFor(t *testing.T) {
	s := embeddedSaaS(t).Scoring
	assert.Equal(t, 30, s.EventPointsFor(customer.EventDemoRequested))
	assert.Equal(t, 10, s.EventPointsFor(customer.EventPricingViewed))
	assert.Equal(t, 0, s.EventPointsFor(customer.EventLogin))
	assert.Equal(t, 0, s.EventPointsFor("nonsense"))
	assert.True(t, s.Qualifies(60))
	assert.False(t, s.Qualifies(59))
}

func TestDecayed(t *testing.T) {
	s := Scoring{Decay: Decay{Points: 5, Every: Duration(7 * 24 * time.Hour)}}
	last := utc(2026, 3, 1, 12, 0)
	d := 24 * time.Hour
	cases := []struct {
		points int
		now    time.Time
		want   int
	}{
		{40, last, 40},
		{40, last.Add(-d), 40}, // clock before the engagement: no decay
		{40, last.Add(7*d - time.Nanosecond), 40},
		{40, last.Add(7 * d), 35},
		{40, last.Add(20 * d), 30},
		{40, last.Add(56 * d), 0},
		{12, last.Add(21 * d), 0},         // floor at zero
		{40, last.AddDate(1000, 0, 0), 0}, // no overflow
		{0, last.Add(70 * d), 0},          // nothing to decay
		{-10, last.Add(70 * d), -10},      // negative points are left alone
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, s.Decayed(tc.points, last, tc.now), "%d after %s", tc.points, tc.now.Sub(last))
	}
	assert.Equal(t, 40, Scoring{}.Decayed(40, last, last.Add(100*d)), "no decay configured")
}

func TestBandFor(t *testing.T) {
	n := embeddedSaaS(t).Nurture
	for score, want := range map[int]string{
		-5: "awareness", 0: "awareness", 24: "awareness", 25: "consideration", 44: "consideration",
		45: "decision", 1000: "decision",
	} {
		assert.Equal(t, want, n.BandFor(score), score)
	}
	// Order in the list does not matter.
	shuffled := Nurture{Bands: []Band{{"high", 50}, {"low", 0}, {"mid", 20}}}
	assert.Equal(t, "mid", shuffled.BandFor(30))
	assert.Equal(t, "low", shuffled.BandFor(-1))
	assert.Equal(t, "", Nurture{}.BandFor(10))
}

func TestTemplateFor(t *testing.T) {
	st := Step{ID: "s", Template: "guide", Variants: map[string]string{"decision": "offer", "empty": ""}}
	assert.Equal(t, "offer", st.TemplateFor("decision"))
	assert.Equal(t, "guide", st.TemplateFor("awareness"))
	assert.Equal(t, "guide", st.TemplateFor(""))
	assert.Equal(t, "guide", st.TemplateFor("empty"))
	assert.Equal(t, "x", Step{Template: "x"}.TemplateFor("decision"))
}

func TestTopReasons(t *testing.T) {
	in := []Reason{
		{"email_opened", 1}, {"pricing_viewed", 10}, {"source:referral", 25}, {"email_opened", 1},
		{"demo_requested", 30}, {"pricing_viewed", 10}, {"company_size", 10}, {"role:cto", 0},
	}
	top := TopReasons(in, 3)
	assert.Equal(t, []Reason{{"demo_requested", 30}, {"source:referral", 25}, {"pricing_viewed", 20}}, top)
	assert.Equal(t, "demo_requested +30, source:referral +25, pricing_viewed +20", FormatReasons(top))
	assert.Len(t, TopReasons(in, 0), 5)
	assert.Empty(t, TopReasons(nil, 3))
	// Ties by source.
	assert.Equal(t, []Reason{{"a", 5}, {"b", 5}}, TopReasons([]Reason{{"b", 5}, {"a", 5}}, 2))
	assert.Equal(t, "x -3", Reason{"x", -3}.String())
}
