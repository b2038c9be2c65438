package campaign

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/customer"
)

func TestTargetsOfTheBuiltInCampaign(t *testing.T) {
	c := embeddedSaaS(t)
	require.NotEmpty(t, c.Targets)
	assert.Equal(t, "trial/nurture → sales ≥ 15%", c.Targets[0].String())
	last := c.Targets[len(c.Targets)-1]
	assert.False(t, last.IsConversion())
	assert.Equal(t, "time in sales ≤ 5d", last.String())
	assert.Equal(t, 5*24*time.Hour, last.MaxTimeInStage.D())
}

func TestTargetsAreValidated(t *testing.T) {
	for name, tc := range map[string]struct {
		target     Target
		path, want string
	}{
		"share above 1":     {Target{From: []customer.Stage{"trial"}, To: "sales", MinConversion: 15}, "targets[0].min_conversion", "at most 1"},
		"no share":          {Target{From: []customer.Stage{"trial"}, To: "sales"}, "targets[0].min_conversion", "above 0"},
		"unknown stage":     {Target{From: []customer.Stage{"trail"}, To: "sales", MinConversion: 0.2}, "targets[0].from[0]", `did you mean "trial"`},
		"no from":           {Target{To: "sales", MinConversion: 0.2}, "targets[0].from", "at least one"},
		"both kinds":        {Target{To: "sales", Stage: "trial", MinConversion: 0.2}, "targets[0]", "not both"},
		"neither":           {Target{}, "targets[0]", "say what is measured"},
		"time not positive": {Target{Stage: "sales"}, "targets[0].max_time_in_stage", "must be > 0"},
	} {
		t.Run(name, func(t *testing.T) {
			c := validBase(t)
			c.Targets = []Target{tc.target}
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.path+": ")
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
