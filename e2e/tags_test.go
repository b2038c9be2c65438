package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/api"
	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// TestTagsReachTheJourneyTheCRMAndSegments: tags set through the API and
// an event's properties show in the journey's state and the CRM contact,
// and a broadcast segment selects on them.
func TestTagsReachTheJourneyTheCRMAndSegments(t *testing.T) {
	t.Parallel()
	s := newEraseStack(t)
	run := testenv.RandomID(5)
	tagged, other := newPerson("tagged", run), newPerson("other", run)
	ctx := context.Background()
	zone := stacktest.DaytimeZone(t)
	for _, p := range []person{tagged, other} {
		_, err := s.caller.Signup(ctx, p.signup(zone))
		require.NoError(t, err)
	}
	res, err := s.caller.Tags(ctx, tagged.id, []string{"vip", "product:analytics"}, nil)
	require.NoError(t, err)
	require.Equal(t, "journey", res.AppliedBy)
	_, err = s.caller.Event(ctx, api.Event{CustomerID: tagged.id, ID: "login-1", Type: "login", At: time.Now(),
		Properties: map[string]any{"tags": []string{"beta"}, "remove_tags": []string{"vip"}}})
	require.NoError(t, err)

	want := []string{"beta", "product:analytics"}
	stacktest.WaitFor(t, 30*time.Second, "tags in the CRM", func() (bool, string) {
		c, err := s.store.GetContact(ctx, tagged.id)
		if err != nil {
			return false, err.Error()
		}
		return slices.Equal(c.Tags, want), strings.Join(c.Tags, ",")
	})
	v, err := s.caller.Journey(ctx, tagged.id)
	require.NoError(t, err)
	require.Equal(t, want, v.Tags)

	// A tag with bad characters is refused with the field named.
	_, err = s.caller.Tags(ctx, tagged.id, []string{"Not OK"}, nil)
	var apiErr *api.ResponseError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 400, apiErr.StatusCode)
	require.Equal(t, "add[0]", apiErr.Field)

	// A broadcast to the tag reaches the tagged customer only.
	in := workflows.BroadcastInput{BroadcastID: "tagged-" + run, CampaignID: "saas-lifecycle", Template: "holiday_new_year",
		Segment: workflows.BroadcastSegment{Tags: []string{"product:analytics"}}}
	r, err := workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, in)
	require.NoError(t, err)
	var p workflows.BroadcastProgress
	require.NoError(t, r.Get(ctx, &p))
	require.Equal(t, 1, p.Recipients(), "%+v", p)
	s.WaitMail(t, tagged.email, "Happy New Year", 30*time.Second)
	require.Empty(t, s.Mails(t, "to:"+other.email+` subject:"Happy New Year"`))
}
