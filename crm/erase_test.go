package crm_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

// occurrences counts, over every table of the schema, the rows whose text
// form contains needle (case-insensitive).
func occurrences(t *testing.T, s *crm.Store, needle string) map[string]int {
	t.Helper()
	rows, err := s.Pool().Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(tables), 8)
	found := map[string]int{}
	for _, table := range tables {
		// The table name comes from the catalogue and is quoted; the needle
		// is a parameter.
		n := count(t, s, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` AS r WHERE r::text ILIKE '%' || $1 || '%'`, needle)
		if n > 0 {
			found[table] = n
		}
	}
	return found
}

func TestEraseRemovesPersonalData(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

	const (
		id      = "cus_erase"
		email   = "Janelle.Quackenbush@zyxcorp.example"
		oldMail = "jq-old@zyxcorp.example"
	)
	// A tag can say what the person attended.
	const tag = "clinic:fertility-talk-2026"
	personal := []string{"janelle.quackenbush@zyxcorp.example", oldMail, "Janelle", "Quackenbush", "Zyxcorp", "Chief Llama Officer", tag}

	c := contact(id)
	c.Email, c.FirstName, c.LastName, c.Company, c.Role = email, "Janelle", "Quackenbush", "Zyxcorp", "Chief Llama Officer"
	mustUpsert(t, s, c)
	require.NoError(t, s.SetTags(ctx, id, []string{tag, "webinar-2026"}, nil))
	mustUpsert(t, s, contact("cus_other"))
	require.NoError(t, s.SetTags(ctx, "cus_other", []string{"webinar-2026"}, nil))

	_, err := s.RecordEvents(ctx, []crm.Event{
		{ID: "e1", CustomerID: id, Type: "form_submitted", OccurredAt: at, Properties: map[string]any{"email": email, "name": "Janelle Quackenbush"}},
		{ID: "e2", CustomerID: "cus_other", Type: "login", OccurredAt: at, Properties: map[string]any{"ip": "192.0.2.1"}},
	})
	require.NoError(t, err)
	tr := crm.Transition{Key: id + "/1/nurture", CustomerID: id, From: crm.StageTrial, To: crm.StageNurture, At: at}
	require.NoError(t, s.RecordTransition(ctx, tr))
	require.NoError(t, s.RecordScore(ctx, crm.ScoreEntry{Key: id + "/score/1", CustomerID: id, Score: 50, At: at}))
	require.NoError(t, s.CreateHandoff(ctx, crm.Handoff{Key: id + "/handoff/1", CustomerID: id, Score: 50,
		Reasons: []crm.HandoffReason{{EventType: "demo_requested", Points: 30}}, OwnerEmail: "owner@acme.test"}))
	require.NoError(t, s.CreateTask(ctx, crm.Task{Key: id + "/task/1", CustomerID: id, Kind: customer.TaskChurnWarning,
		Title: "Call Janelle Quackenbush at Zyxcorp", OwnerEmail: "owner@acme.test"}))
	// Mail went to the current and to an earlier address.
	for key, addr := range map[string]string{id + "/welcome/0": oldMail, id + "/welcome/3": email} {
		sc := claim(key)
		sc.CustomerID, sc.Email = id, addr
		requireClaim(t, s, sc, crm.ClaimNew)
		require.NoError(t, s.MarkSent(ctx, key, at))
	}
	for _, p := range personal {
		require.NotEmpty(t, occurrences(t, s, p), "fixture should contain %q", p)
	}

	require.NoError(t, s.Erase(ctx, id))

	for _, p := range personal {
		require.Empty(t, occurrences(t, s, p), "%q is still stored", p)
	}
	got, err := s.GetContact(ctx, id)
	require.NoError(t, err)
	require.True(t, got.Erased())
	require.Equal(t, crm.StageErased, got.Stage)
	require.Equal(t, id, got.CustomerID)
	require.Empty(t, got.Email)
	require.Nil(t, got.Tags)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM stage_transitions WHERE customer_id = $1 AND to_stage = 'erased'`, id))
	erasedAt := *got.ErasedAt

	// Other customers are untouched.
	other, err := s.GetContact(ctx, "cus_other")
	require.NoError(t, err)
	require.Equal(t, "cus_other@example.com", other.Email)
	require.Equal(t, []string{"webinar-2026"}, other.Tags)
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM events WHERE event_id = 'e2' AND properties->>'ip' = '192.0.2.1'`))

	// Both addresses stay suppressed, whatever their case.
	for _, addr := range []string{email, "JQ-OLD@zyxcorp.example"} {
		ok, reason, err := s.IsSuppressed(ctx, addr)
		require.NoError(t, err)
		require.True(t, ok, addr)
		require.Equal(t, customer.ReasonErased, reason)
	}
	// And an unsubscribe that arrives later does not weaken it.
	require.NoError(t, s.Suppress(ctx, email, id, customer.ReasonUnsubscribed))
	_, reason, err := s.IsSuppressed(ctx, email)
	require.NoError(t, err)
	require.Equal(t, customer.ReasonErased, reason)
	tx := claim(id + "/receipt/1")
	tx.CustomerID, tx.Email, tx.Category = id, email, crm.CategoryTransactional
	requireClaim(t, s, tx, crm.ClaimSuppressed)

	// Idempotent.
	require.NoError(t, s.Erase(ctx, id))
	got, err = s.GetContact(ctx, id)
	require.NoError(t, err)
	require.True(t, got.ErasedAt.Equal(erasedAt))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM stage_transitions WHERE customer_id = $1 AND to_stage = 'erased'`, id))
	require.Equal(t, 2, count(t, s, `SELECT count(*) FROM suppressions WHERE customer_id = $1`, id))

	// Nothing brings the person back.
	require.ErrorIs(t, s.UpsertContact(ctx, c), crm.ErrErased)
	require.ErrorIs(t, s.RecordTransition(ctx, crm.Transition{Key: id + "/2/sales", CustomerID: id, To: crm.StageSales}), crm.ErrErased)
	require.ErrorIs(t, s.RecordScore(ctx, crm.ScoreEntry{Key: id + "/score/2", CustomerID: id, Score: 1}), crm.ErrErased)
	require.ErrorIs(t, s.CreateTask(ctx, crm.Task{Key: id + "/task/2", CustomerID: id, Kind: customer.TaskFollowUp}), crm.ErrErased)
	require.ErrorIs(t, s.CreateHandoff(ctx, crm.Handoff{Key: id + "/handoff/2", CustomerID: id}), crm.ErrErased)
	require.ErrorIs(t, s.SetTags(ctx, id, []string{tag}, nil), crm.ErrErased)
	// A retry of a write made before the erasure still succeeds.
	require.NoError(t, s.RecordTransition(ctx, tr))
	// A late event is kept for dedupe, without its properties.
	n, err := s.RecordEvents(ctx, []crm.Event{{ID: "e3", CustomerID: id, Type: "email_opened", OccurredAt: at, Properties: map[string]any{"email": email}}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, occurrences(t, s, "janelle"))
	require.Equal(t, 1, count(t, s, `SELECT count(*) FROM events WHERE event_id = 'e3' AND ignored_reason = $1`, crm.IgnoredErased))
	got, err = s.GetContact(ctx, id)
	require.NoError(t, err)
	require.Equal(t, crm.StageErased, got.Stage)
}

func TestEraseUnknownCustomerLeavesTombstone(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	_, err := s.RecordEvents(ctx, []crm.Event{{ID: "e1", CustomerID: "cus_ghost", Type: "signup", OccurredAt: time.Now(), Properties: map[string]any{"email": "ghost@example.com"}}})
	require.NoError(t, err)

	require.NoError(t, s.Erase(ctx, "cus_ghost"))
	require.NoError(t, s.Erase(ctx, "cus_ghost"))
	require.Empty(t, occurrences(t, s, "ghost@example.com"))
	got, err := s.GetContact(ctx, "cus_ghost")
	require.NoError(t, err)
	require.True(t, got.Erased())
	c := contact("cus_ghost")
	require.ErrorIs(t, s.UpsertContact(ctx, c), crm.ErrErased)
	requireInvalid(t, s.Erase(ctx, ""), "customer_id")
}
