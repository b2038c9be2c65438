package activities

import (
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

// Every field of the broadcast's segment reaches the CRM's: a field
// dropped on the way would silently widen the audience.
func TestBroadcastSegmentCarriesEveryFieldToTheCRM(t *testing.T) {
	score := 7
	in := BroadcastSegment{Stages: []string{"active"}, MinScore: &score, LeadSources: []string{"referral"},
		CustomerIDPrefix: "c-", Tags: []string{"vip", "webinar-2026"}}
	src := reflect.ValueOf(in)
	for i := range src.NumField() {
		require.False(t, src.Field(i).IsZero(), "set BroadcastSegment.%s in this test", src.Type().Field(i).Name)
	}
	out := reflect.ValueOf(in.crm())
	require.Equal(t, src.NumField(), out.NumField(), "BroadcastSegment and crm.Segment have the same fields")
	for i := range src.NumField() {
		name := src.Type().Field(i).Name
		got := out.FieldByName(name)
		require.True(t, got.IsValid(), "crm.Segment has no field %s", name)
		require.Equal(t, src.Field(i).Interface(), got.Interface(), name)
	}
}

func TestBroadcastValidatesTheTags(t *testing.T) {
	in := pageInput(10).Broadcast
	in.Segment.Tags = []string{"vip", "Webinar"}
	var verr *crm.ValidationError
	require.True(t, errors.As(in.Validate(), &verr))
	require.Equal(t, "segment.tags[1]", verr.Field)
	in.Segment.Tags = []string{"vip"}
	require.NoError(t, in.Validate())
}

func TestSendPageSendsToTheTaggedContacts(t *testing.T) {
	f := newBroadcastFixture(t)
	f.seed(t, 6, nil)
	ctx := t.Context()
	require.NoError(t, f.store.SetTags(ctx, "c01", []string{"webinar-2026", "vip"}, nil))
	require.NoError(t, f.store.SetTags(ctx, "c03", []string{"webinar-2026"}, nil))
	require.NoError(t, f.store.SetTags(ctx, "c04", []string{"vip"}, nil))

	in := pageInput(50)
	in.Broadcast.Segment = BroadcastSegment{Tags: []string{"webinar-2026"}}
	r, err := f.page(t, in, nil)
	require.NoError(t, err)
	require.Equal(t, BroadcastPageResult{Sent: 2, NextCursor: "c03", Done: true, CampaignVersion: "v1"}, r)
	require.Equal(t, []string{"c01@bc.test", "c03@bc.test"}, f.mail.to())
}
