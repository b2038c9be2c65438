package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func TestRecordTransitionIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

	tr := crm.Transition{
		Key: "journey-cus_1/3/to-nurture", CustomerID: "cus_1",
		From: crm.StageTrial, To: crm.StageNurture, Reason: "trial started",
		CampaignID: "trial", CampaignVersion: "3", At: at,
	}
	require.NoError(t, s.RecordTransition(ctx, tr))
	require.NoError(t, s.RecordTransition(ctx, tr)) // a retried activity
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM stage_transitions`))
	c, err := s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.Equal(t, crm.StageNurture, c.Stage)
	require.Equal(t, "trial", c.CampaignID)
	require.Equal(t, "3", c.CampaignVersion)

	// A later transition moves the stage; one delayed from before it is
	// kept in the history but does not move the stage back.
	require.NoError(t, s.RecordTransition(ctx, crm.Transition{
		Key: "journey-cus_1/9/to-sales", CustomerID: "cus_1", From: crm.StageNurture, To: crm.StageSales, At: at.Add(48 * time.Hour),
	}))
	require.NoError(t, s.RecordTransition(ctx, crm.Transition{
		Key: "journey-cus_1/5/to-at_risk", CustomerID: "cus_1", From: crm.StageNurture, To: crm.StageAtRisk, At: at.Add(24 * time.Hour),
	}))
	c, err = s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.Equal(t, crm.StageSales, c.Stage)
	require.Equal(t, "3", c.CampaignVersion, "a transition without campaign keeps the version")
	require.Equal(t, 3, count(t, s, `SELECT count(*) FROM stage_transitions WHERE customer_id = 'cus_1'`))

	// A customer without a contact (a journey started by events, before
	// the signup) gets an empty one that holds the stage.
	require.NoError(t, s.RecordTransition(ctx, crm.Transition{Key: "x", CustomerID: "nobody", To: crm.StageUnsubscribed,
		Journey: "j1", StageSeq: 1}))
	c, err = s.GetContact(ctx, "nobody")
	require.NoError(t, err)
	require.Equal(t, crm.StageUnsubscribed, c.Stage)
	require.Empty(t, c.Email)
	require.False(t, c.Consent)

	// Errors.
	mustUpsert(t, s, contact("cus_2"))
	err = s.RecordTransition(ctx, crm.Transition{Key: tr.Key, CustomerID: "cus_2", To: crm.StageNurture})
	require.ErrorIs(t, err, crm.ErrKeyConflict)
	requireInvalid(t, s.RecordTransition(ctx, crm.Transition{CustomerID: "cus_1", To: crm.StageTrial}), "transition_key")
	requireInvalid(t, s.RecordTransition(ctx, crm.Transition{Key: "k", To: crm.StageTrial}), "customer_id")
	requireInvalid(t, s.RecordTransition(ctx, crm.Transition{Key: "k", CustomerID: "cus_1", To: "limbo"}), "to_stage")
	requireInvalid(t, s.RecordTransition(ctx, crm.Transition{Key: "k", CustomerID: "cus_1", From: "limbo", To: crm.StageTrial}), "from_stage")
	requireInvalid(t, s.RecordTransition(ctx, crm.Transition{Key: "k", CustomerID: "cus_1", To: crm.StageErased}), "to_stage")
}

func TestRecordScoreIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

	e := crm.ScoreEntry{Key: "journey-cus_1/score/ev7", CustomerID: "cus_1", Score: 35, Behaviour: 20, Fit: 15, Reason: "pricing_viewed +10", At: at}
	require.NoError(t, s.RecordScore(ctx, e))
	require.NoError(t, s.RecordScore(ctx, e))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM score_history`))
	c, err := s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.Equal(t, 35, c.Score)

	// An older entry recorded late does not overwrite the current score.
	require.NoError(t, s.RecordScore(ctx, crm.ScoreEntry{Key: "journey-cus_1/score/ev6", CustomerID: "cus_1", Score: 25, At: at.Add(-time.Hour)}))
	c, err = s.GetContact(ctx, "cus_1")
	require.NoError(t, err)
	require.Equal(t, 35, c.Score)

	// A lead scores before the signup: the score waits on an empty contact.
	require.NoError(t, s.RecordScore(ctx, crm.ScoreEntry{Key: "k", CustomerID: "nobody", Score: 10}))
	c, err = s.GetContact(ctx, "nobody")
	require.NoError(t, err)
	require.Equal(t, 10, c.Score)
	requireInvalid(t, s.RecordScore(ctx, crm.ScoreEntry{CustomerID: "cus_1"}), "score_key")
	requireInvalid(t, s.RecordScore(ctx, crm.ScoreEntry{Key: "k"}), "customer_id")
}

func TestHandoffIdempotentAndStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	due := time.Date(2025, 3, 2, 9, 0, 0, 0, time.UTC)

	h := crm.Handoff{
		Key: "journey-cus_1/handoff/1", CustomerID: "cus_1", Score: 72,
		Reasons:    []crm.HandoffReason{{EventType: "demo_requested", Points: 30}, {EventType: "pricing_viewed", Points: 10}},
		OwnerEmail: "owner@acme.test", SLADueAt: due,
	}
	require.NoError(t, s.CreateHandoff(ctx, h))
	require.NoError(t, s.SetHandoffStatus(ctx, h.Key, customer.HandoffAccepted))
	require.NoError(t, s.CreateHandoff(ctx, h)) // a retry does not reset the status
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM handoffs`))
	got, err := s.GetHandoff(ctx, h.Key)
	require.NoError(t, err)
	require.Equal(t, customer.HandoffAccepted, got.Status)
	require.Equal(t, h.Reasons, got.Reasons)
	require.True(t, got.SLADueAt.Equal(due))
	require.Equal(t, 72, got.Score)

	require.NoError(t, s.SetHandoffStatus(ctx, h.Key, customer.HandoffWon))
	require.NoError(t, s.SetHandoffStatus(ctx, h.Key, customer.HandoffWon), "same status again is a no-op")
	require.ErrorIs(t, s.SetHandoffStatus(ctx, h.Key, customer.HandoffEscalated), crm.ErrHandoffClosed)

	require.ErrorIs(t, s.SetHandoffStatus(ctx, "no-such-handoff", customer.HandoffWon), crm.ErrNotFound)
	requireInvalid(t, s.SetHandoffStatus(ctx, h.Key, "maybe"), "status")
	requireInvalid(t, s.SetHandoffStatus(ctx, "", customer.HandoffWon), "handoff_key")
	requireInvalid(t, s.CreateHandoff(ctx, crm.Handoff{Key: "k", CustomerID: "cus_1", Status: "pending"}), "status")
	requireInvalid(t, s.CreateHandoff(ctx, crm.Handoff{Key: "k", CustomerID: "cus_1", Reasons: []crm.HandoffReason{{Points: 3}}}), "reasons[0].event_type")
	require.ErrorIs(t, s.CreateHandoff(ctx, crm.Handoff{Key: "k", CustomerID: "nobody"}), crm.ErrNotFound)
}

func TestCreateTaskIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mustUpsert(t, s, contact("cus_1"))
	task := crm.Task{
		Key: "journey-cus_1/at_risk/1", CustomerID: "cus_1", OwnerEmail: "owner@acme.test",
		Kind: customer.TaskChurnWarning, Title: "Churn warning: no login for 30 days", DueAt: time.Now().Add(24 * time.Hour),
	}
	require.NoError(t, s.CreateTask(ctx, task))
	require.NoError(t, s.CreateTask(ctx, task))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM tasks`))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM tasks WHERE status = 'open' AND kind = 'churn_warning'`))

	requireInvalid(t, s.CreateTask(ctx, crm.Task{Key: "k", CustomerID: "cus_1", Kind: "Churn Warning"}), "kind")
	requireInvalid(t, s.CreateTask(ctx, crm.Task{Key: "k", CustomerID: "cus_1", Kind: "follow_up", Status: "later"}), "status")
	requireInvalid(t, s.CreateTask(ctx, crm.Task{CustomerID: "cus_1", Kind: "follow_up"}), "task_key")
	requireInvalid(t, s.CreateTask(ctx, crm.Task{Key: "k", CustomerID: "cus_1", Kind: "follow_up", OwnerEmail: "nope"}), "owner_email")
}
