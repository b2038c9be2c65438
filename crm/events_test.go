package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
)

func TestRecordEventsDeduplicates(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

	batch := []crm.Event{
		{ID: "ev1", CustomerID: "cus_1", Type: "email_opened", OccurredAt: at, Properties: map[string]any{"template": "welcome"}},
		{ID: "ev2", CustomerID: "cus_1", Type: "pricing_viewed", OccurredAt: at.Add(time.Minute)},
		{ID: "ev1", CustomerID: "cus_1", Type: "email_opened", OccurredAt: at, Properties: map[string]any{"template": "second copy"}},
		{ID: "ev3", CustomerID: "cus_2", Type: "teleported", OccurredAt: at, IgnoredReason: "unknown event type \"teleported\""},
	}
	n, err := s.RecordEvents(ctx, batch)
	require.NoError(t, err)
	require.Equal(t, 3, n)

	// Sent again, plus new ones: only the new ones are inserted and listed,
	// in batch order.
	fresh, err := s.RecordNewEvents(ctx, "", append([]crm.Event{
		{ID: "ev5", CustomerID: "cus_1", Type: "login", OccurredAt: at.Add(2 * time.Hour)},
	}, append(batch, crm.Event{ID: "ev4", CustomerID: "cus_1", Type: "login", OccurredAt: at.Add(time.Hour)},
		crm.Event{ID: "ev5", CustomerID: "cus_1", Type: "login", OccurredAt: at.Add(2 * time.Hour)})...))
	require.NoError(t, err)
	require.Equal(t, []string{"ev5", "ev4"}, fresh)
	n, err = s.RecordEvents(ctx, batch)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 5, count(t, s, `SELECT count(*) FROM events`))

	evs, err := s.EventsOf(ctx, "cus_1")
	require.NoError(t, err)
	require.Len(t, evs, 4)
	require.Equal(t, "ev1", evs[0].ID)
	require.Equal(t, map[string]any{"template": "welcome"}, evs[0].Properties, "the first occurrence wins")
	require.True(t, evs[0].OccurredAt.Equal(at))
	require.False(t, evs[0].ReceivedAt.IsZero())
	require.Equal(t, map[string]any{}, evs[1].Properties)

	evs, err = s.EventsOf(ctx, "cus_2")
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, `unknown event type "teleported"`, evs[0].IgnoredReason)

	n, err = s.RecordEvents(ctx, nil)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestRecordEventsRejectsBatchWithInvalidEvent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	at := time.Now()
	good := crm.Event{ID: "ok", CustomerID: "cus_1", Type: "login", OccurredAt: at}
	cases := map[string]crm.Event{
		"events[1].event_id":    {CustomerID: "cus_1", Type: "login", OccurredAt: at},
		"events[1].customer_id": {ID: "e", Type: "login", OccurredAt: at},
		"events[1].type":        {ID: "e", CustomerID: "cus_1", OccurredAt: at},
		"events[1].occurred_at": {ID: "e", CustomerID: "cus_1", Type: "login"},
		"events[1].properties":  {ID: "e", CustomerID: "cus_1", Type: "login", OccurredAt: at, Properties: map[string]any{"f": func() {}}},
	}
	for field, bad := range cases {
		_, err := s.RecordEvents(t.Context(), []crm.Event{good, bad})
		requireInvalid(t, err, field)
	}
	require.Equal(t, 0, count(t, s, `SELECT count(*) FROM events`), "nothing of a rejected batch is written")
}

// A call that is retried after the database committed (a local activity
// re-run because its workflow task failed; an activity whose answer was
// lost) must get the same answer, or the journey would drop the events as
// "already recorded". Another call with the same events gets nothing new.
func TestRetriedBatchGetsTheSameAnswer(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	events := []crm.Event{
		{ID: "u1", CustomerID: "cus_1", Type: "unsubscribe", OccurredAt: at},
		{ID: "o1", CustomerID: "cus_1", Type: "email_opened", OccurredAt: at},
	}
	first, err := s.RecordNewEvents(ctx, "run-a/1", events)
	require.NoError(t, err)
	require.Equal(t, []string{"u1", "o1"}, first)

	retry, err := s.RecordNewEvents(ctx, "run-a/1", events)
	require.NoError(t, err)
	require.Equal(t, first, retry, "the same call again: the same answer")

	other, err := s.RecordNewEvents(ctx, "run-a/2", append(events, crm.Event{ID: "p1", CustomerID: "cus_1", Type: "pricing_viewed", OccurredAt: at}))
	require.NoError(t, err)
	require.Equal(t, []string{"p1"}, other, "another call: only what it stored")

	none, err := s.RecordNewEvents(ctx, "", events)
	require.NoError(t, err)
	require.Empty(t, none, "no batch: stored before means not new")
	require.Equal(t, 3, count(t, s, `SELECT count(*) FROM events`))
}
