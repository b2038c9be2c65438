package activities_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

// RecordEvents is the dedupe ledger of events: a second call with
// overlapping IDs reports only the IDs it had not seen, and an ignored
// event is kept with its reason.
func TestRecordEventsReturnsOnlyNewIDs(t *testing.T) {
	t.Parallel()
	f := newCRMFixture(t)
	reg := prometheus.NewRegistry()
	f.acts.Metrics = activities.NewMetrics(reg)
	recorded := func(outcome string) float64 {
		return counterValue(t, reg, "lifecycle_crm_events_total", map[string]string{"outcome": outcome})
	}
	id, addr := newCustomer("events")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))

	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	ev := func(n, typ string) activities.EventRecord {
		return activities.EventRecord{ID: id + "/ev-" + n, Type: typ, At: at.Add(time.Duration(len(n)) * time.Minute)}
	}
	e1 := ev("1", "email_opened")
	e1.Properties = map[string]any{"template": "welcome", "client": "web"}
	e2 := ev("2", "pricing_viewed")
	e3 := ev("3", "fax_received")
	e3.IgnoredReason = `unknown event type "fax_received"`
	e4 := ev("4", "demo_requested")

	first, err := f.recordEvents(activities.RecordEventsInput{CustomerID: id, Key: "run/1", Events: []activities.EventRecord{e1, e2, e3}})
	require.NoError(t, err)
	require.Equal(t, []string{e1.ID, e2.ID, e3.ID}, first.New)

	// Overlapping, with a repeat inside the batch.
	second, err := f.recordEvents(activities.RecordEventsInput{CustomerID: id, Key: "run/2", Events: []activities.EventRecord{e2, e3, e4, e4, e1}})
	require.NoError(t, err)
	require.Equal(t, []string{e4.ID}, second.New)

	// The same events from another call (a duplicate delivery): nothing new.
	again, err := f.recordEvents(activities.RecordEventsInput{CustomerID: id, Key: "run/3", Events: []activities.EventRecord{e2, e3, e4}})
	require.NoError(t, err)
	require.Empty(t, again.New)

	// A retry of the second call (its answer was lost): the same answer.
	retried, err := f.recordEvents(activities.RecordEventsInput{CustomerID: id, Key: "run/2", Events: []activities.EventRecord{e2, e3, e4, e4, e1}})
	require.NoError(t, err)
	require.Equal(t, second.New, retried.New)
	// The counter counts per call: the retry's event counts again.
	require.Equal(t, 5.0, recorded("new"))
	require.Equal(t, 11.0, recorded("duplicate"), "repeats inside a batch count too")

	stored, err := f.store.EventsOf(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, stored, 4)
	byID := map[string]crm.Event{}
	for _, e := range stored {
		byID[e.ID] = e
	}
	require.Equal(t, e3.IgnoredReason, byID[e3.ID].IgnoredReason, "the ignored event keeps its reason")
	require.Equal(t, "fax_received", byID[e3.ID].Type)
	require.Empty(t, byID[e1.ID].IgnoredReason)
	require.Equal(t, "welcome", byID[e1.ID].Properties["template"])
	require.True(t, e1.At.Equal(byID[e1.ID].OccurredAt), "occurred at %v, want %v", byID[e1.ID].OccurredAt, e1.At)

	// A batch with one invalid event is rejected as a whole, non-retryably,
	// and the error names the event.
	e5 := ev("5", "login")
	bad := ev("6", "")
	_, err = f.recordEvents(activities.RecordEventsInput{CustomerID: id, Events: []activities.EventRecord{e5, bad}})
	require.Contains(t, requireRejected(t, err), "events[1].type")
	stored, err = f.store.EventsOf(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, stored, 4, "nothing of the rejected batch is stored")
}

// EraseContact deletes the personal data everywhere in the CRM, keeps a
// tombstone, and later mail to the address is suppressed.
func TestEraseContactRemovesPersonalDataAndStopsMail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, addr := newCustomer("erase")
	c := contactFor(id, addr)
	c.LastName, c.Company = "Byronsdottir", "Difference Engines "+strings.ToUpper(id[len(id)-6:])
	require.NoError(t, f.upsertContact(c))

	_, err := f.recordEvents(activities.RecordEventsInput{CustomerID: id, Events: []activities.EventRecord{{
		ID: id + "/ev-1", Type: "demo_requested", At: time.Now().UTC(),
		Properties: map[string]any{"email": addr, "name": "Ada " + c.LastName, "company": c.Company},
	}}})
	require.NoError(t, err)
	welcome := f.marketingSend(id, addr)
	require.Equal(t, activities.SendSent, f.mustSend(welcome).Status)
	f.waitForOne(addr)
	require.NoError(t, f.write(activities.CRMWrite{Task: &activities.TaskInput{
		Key: id + "/task/1", CustomerID: id, OwnerEmail: "owner@acme.example", Kind: customer.TaskFollowUp,
		Title: "Call Ada " + c.LastName + " at " + c.Company,
	}}))
	require.NotEmpty(t, f.rowsMentioning(addr), "the test has personal data to erase")

	require.NoError(t, f.erase(id))
	require.NoError(t, f.erase(id), "erasing twice")

	got, err := f.store.GetContact(f.ctx, id)
	require.NoError(t, err)
	require.True(t, got.Erased())
	require.Equal(t, crm.StageErased, got.Stage)
	require.Empty(t, got.Email)
	require.Empty(t, got.FirstName)
	require.Empty(t, got.LastName)
	require.Empty(t, got.Company)
	require.Empty(t, got.Role)
	require.Empty(t, got.TimeZone)
	require.Empty(t, got.OwnerEmail)
	require.Zero(t, got.CompanySize)
	require.False(t, got.Consent)

	events, err := f.store.EventsOf(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, events, 1, "the event stays (deduplication), without its properties")
	require.Empty(t, events[0].Properties)
	send, err := f.store.GetSend(f.ctx, welcome.Key)
	require.NoError(t, err)
	require.Empty(t, send.Email, "the ledger forgets the address")
	require.Equal(t, crm.SendSent, send.Status)

	for _, pii := range []string{addr, c.LastName, c.Company} {
		require.Empty(t, f.rowsMentioning(pii), "rows still holding %q", pii)
	}

	// Mail to the address stops, marketing and transactional alike.
	stats := f.sender.Stats()
	later := f.marketingSend(id, addr)
	later.Key = id + "/" + campaignID + "@" + campaignVersion + "/nurture/getting-started"
	later.Template = f.camp.Nurture.Steps[0].Template
	res := f.mustSend(later)
	require.Equal(t, activities.SendSuppressed, res.Status, "result %+v", res)
	notice := f.handoffNotice(id, addr)
	require.Equal(t, activities.SendSuppressed, f.mustSend(notice).Status)
	require.Equal(t, stats, f.sender.Stats(), "nothing went to SMTP")
	require.Len(t, f.messagesTo(addr), 1, "only the welcome sent before the erasure")

	// The person does not come back: a late upsert is refused for good,
	// a late event is kept without data.
	err = f.upsertContact(c)
	require.Contains(t, requireRejected(t, err), "erased")
	fresh, err := f.recordEvents(activities.RecordEventsInput{CustomerID: id, Events: []activities.EventRecord{{
		ID: id + "/ev-2", Type: "login", At: time.Now().UTC(), Properties: map[string]any{"email": addr},
	}}})
	require.NoError(t, err)
	require.Equal(t, []string{id + "/ev-2"}, fresh.New)
	events, err = f.store.EventsOf(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, events, 2)
	for _, e := range events {
		require.Empty(t, e.Properties, "event %s", e.ID)
	}
	got, err = f.store.GetContact(f.ctx, id)
	require.NoError(t, err)
	require.True(t, got.Erased())
	require.Empty(t, got.Email)

	// A customer the CRM never had: nothing to erase, no error.
	nobody, _ := newCustomer("nobody")
	require.NoError(t, f.erase(nobody))
}

// A send attempted after the erasure (a journey step already scheduled)
// is suppressed, and must not write the erased address back into the CRM
// (crm.ClaimSend stores no address when the suppression reason is erased).
func TestSendAfterEraseStoresNoAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, addr := newCustomer("erased-late")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))
	require.NoError(t, f.erase(id))
	require.Empty(t, f.rowsMentioning(addr))

	res := f.mustSend(f.marketingSend(id, addr))
	require.Equal(t, activities.SendSuppressed, res.Status)
	require.Equal(t, activities.SendSuppressed, f.mustSend(f.handoffNotice(id, addr)).Status)
	require.Empty(t, f.rowsMentioning(addr), "rows holding the erased address")
	f.requireNoMail(addr)
}

// Journey writes about an erased customer can never succeed: they are
// refused for good at once instead of being retried forever.
func TestWritesAboutErasedCustomerAreNotRetried(t *testing.T) {
	t.Parallel()
	f := newCRMFixture(t)
	id, addr := newCustomer("gone")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))
	require.NoError(t, f.erase(id))

	now := time.Now().UTC()
	for name, w := range map[string]activities.CRMWrite{
		"transition": {Transition: &activities.TransitionInput{
			Key: id + "/transition/9", CustomerID: id, From: customer.StageTrial, To: customer.StageNurture,
			Reason: "trial ended", At: now,
		}},
		"score": {Score: &activities.ScoreInput{
			Key: id + "/score/9", CustomerID: id, Score: 12, Behaviour: 2, Fit: 10, Reason: "login", At: now,
		}},
		"handoff": {Handoff: &activities.HandoffInput{
			Key: id + "/handoff/1", CustomerID: id, Score: 70, OwnerEmail: "sales@acme.example",
			Reasons: []campaign.Reason{{Source: "demo_requested", Points: 30}}, SLADue: now.Add(24 * time.Hour),
		}},
		"task": {Task: &activities.TaskInput{
			Key: id + "/task/9", CustomerID: id, OwnerEmail: "owner@acme.example", Kind: customer.TaskChurnWarning,
			Title: "Call", DueAt: now.Add(72 * time.Hour),
		}},
		"contact": {Contact: func() *activities.Contact { c := contactFor(id, addr); return &c }()},
	} {
		t.Run(name, func(t *testing.T) {
			require.Contains(t, requireRejected(t, f.write(w)), "erased")
		})
	}
}

// The journey's CRM writes are idempotent by key: a retried activity writes
// nothing twice, and a key reused for another customer is a bug reported
// non-retryably.
func TestJourneyWritesAreIdempotent(t *testing.T) {
	t.Parallel()
	f := newCRMFixture(t)
	id, addr := newCustomer("journey")
	require.NoError(t, f.upsertContact(contactFor(id, addr)))
	now := time.Now().UTC().Truncate(time.Second)
	count := func(query string) int {
		var n int
		require.NoError(t, f.store.Pool().QueryRow(f.ctx, query, id).Scan(&n))
		return n
	}

	tr := activities.TransitionInput{Key: id + "/transition/1", CustomerID: id, From: customer.StageTrial,
		To: customer.StageNurture, Reason: "trial ended", At: now, CampaignID: campaignID, CampaignVersion: campaignVersion}
	require.NoError(t, f.write(activities.CRMWrite{Transition: &tr}))
	require.NoError(t, f.write(activities.CRMWrite{Transition: &tr}))
	require.Equal(t, 1, count(`SELECT count(*) FROM stage_transitions WHERE customer_id = $1`))

	sc := activities.ScoreInput{Key: id + "/score/1", CustomerID: id, Score: 38, Behaviour: 13, Fit: 25, Reason: "pricing_viewed", At: now}
	require.NoError(t, f.write(activities.CRMWrite{Score: &sc}))
	require.NoError(t, f.write(activities.CRMWrite{Score: &sc}))
	require.Equal(t, 1, count(`SELECT count(*) FROM score_history WHERE customer_id = $1`))

	got, err := f.store.GetContact(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, crm.StageNurture, got.Stage)
	require.Equal(t, 38, got.Score)

	ho := activities.HandoffInput{Key: id + "/handoff/1", CustomerID: id, Score: 64, OwnerEmail: "sales@acme.example",
		Reasons: []campaign.Reason{{Source: "demo_requested", Points: 30}, {Source: "pricing_viewed", Points: 10}},
		SLADue:  now.Add(24 * time.Hour)}
	require.NoError(t, f.write(activities.CRMWrite{Handoff: &ho}))
	require.NoError(t, f.write(activities.CRMWrite{Handoff: &ho}))
	require.Equal(t, 1, count(`SELECT count(*) FROM handoffs WHERE customer_id = $1`))
	h, err := f.store.GetHandoff(f.ctx, ho.Key)
	require.NoError(t, err)
	require.Equal(t, customer.HandoffOpen, h.Status)
	require.Equal(t, []crm.HandoffReason{{EventType: "demo_requested", Points: 30}, {EventType: "pricing_viewed", Points: 10}}, h.Reasons)

	for _, status := range []string{customer.HandoffAccepted, customer.HandoffWon, customer.HandoffWon} {
		require.NoError(t, f.write(activities.CRMWrite{HandoffStatus: &activities.HandoffStatusInput{Key: ho.Key, Status: status}}))
	}
	// A late escalation of a won deal is not an error and changes nothing.
	require.NoError(t, f.write(activities.CRMWrite{HandoffStatus: &activities.HandoffStatusInput{Key: ho.Key, Status: customer.HandoffEscalated}}))
	h, err = f.store.GetHandoff(f.ctx, ho.Key)
	require.NoError(t, err)
	require.Equal(t, customer.HandoffWon, h.Status)

	task := activities.TaskInput{Key: id + "/task/1", CustomerID: id, OwnerEmail: "owner@acme.example",
		Kind: customer.TaskChurnWarning, Title: "Call about inactivity", DueAt: now.Add(72 * time.Hour)}
	require.NoError(t, f.write(activities.CRMWrite{Task: &task}))
	require.NoError(t, f.write(activities.CRMWrite{Task: &task}))
	require.Equal(t, 1, count(`SELECT count(*) FROM tasks WHERE customer_id = $1`))

	// The same key for another customer.
	otherID, otherAddr := newCustomer("other")
	require.NoError(t, f.upsertContact(contactFor(otherID, otherAddr)))
	stolen := tr
	stolen.CustomerID = otherID
	requireRejected(t, f.write(activities.CRMWrite{Transition: &stolen}))

	// Invalid input never succeeds.
	badStage := tr
	badStage.Key, badStage.To = id+"/transition/2", "limbo"
	requireRejected(t, f.write(activities.CRMWrite{Transition: &badStage}))
	requireRejected(t, f.write(activities.CRMWrite{Suppress: &activities.SuppressInput{CustomerID: id, Email: addr, Reason: "bored"}}))

	// No contact yet (a journey still pending, without a signup): the
	// stage and score are kept on a new, empty contact (no address, no
	// consent: in no audience) that the signup fills in.
	pending := tr
	pending.Key, pending.CustomerID, pending.To = "pending/transition/1", "pending-"+id, customer.StageUnsubscribed
	require.NoError(t, f.write(activities.CRMWrite{Transition: &pending}))
	got, err = f.store.GetContact(f.ctx, pending.CustomerID)
	require.NoError(t, err)
	require.Equal(t, crm.StageUnsubscribed, got.Stage)
	require.Empty(t, got.Email)
	require.False(t, got.Consent)
}

// WriteCRM makes a journey's batch of writes in order, idempotently: a
// signup's batch run twice writes each row once. A write refused for good
// is listed and the rest of the batch goes on. An events write that asks
// for it stops the batch when not all its events are new.
func TestWriteCRMBatch(t *testing.T) {
	t.Parallel()
	f := newCRMFixture(t)
	id, addr := newCustomer("batch")
	c := contactFor(id, addr)
	now := time.Now().UTC().Truncate(time.Second)
	signup := []activities.CRMWrite{
		{Contact: &c},
		{Transition: &activities.TransitionInput{Key: id + "/j1/transition/1", CustomerID: id, From: customer.StagePending,
			To: customer.StageTrial, Reason: "trial signup", At: now, CampaignID: campaignID, CampaignVersion: campaignVersion,
			Journey: "j1", StageSeq: 1}},
		{Score: &activities.ScoreInput{Key: id + "/j1/score/1", CustomerID: id, Score: 28, Fit: 28, Reason: "signup", At: now}},
	}
	for range 2 {
		res, err := f.writeCRM(signup...)
		require.NoError(t, err)
		require.Equal(t, activities.WriteCRMResult{Done: 3}, res)
	}
	count := func(table string) int {
		var n int
		require.NoError(t, f.store.Pool().QueryRow(f.ctx, `SELECT count(*) FROM `+table+` WHERE customer_id = $1`, id).Scan(&n))
		return n
	}
	require.Equal(t, 1, count("contacts"))
	require.Equal(t, 1, count("stage_transitions"))
	require.Equal(t, 1, count("score_history"))
	got, err := f.store.GetContact(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, crm.StageTrial, got.Stage)
	require.Equal(t, 28, got.Score, "segments select on the journey's score")

	// A refused write in the middle: listed, and the batch goes on.
	bad := activities.TransitionInput{Key: id + "/j1/transition/2", CustomerID: id, From: customer.StageTrial, To: "limbo", At: now}
	task := activities.TaskInput{Key: id + "/j1/task/1", CustomerID: id, OwnerEmail: "owner@acme.example", Kind: customer.TaskFollowUp, Title: "Call"}
	res, err := f.writeCRM(activities.CRMWrite{Transition: &bad}, activities.CRMWrite{Task: &task})
	require.NoError(t, err)
	require.Equal(t, 2, res.Done)
	require.Len(t, res.Rejected, 1)
	require.Equal(t, 0, res.Rejected[0].Index)
	require.Equal(t, "transition", res.Rejected[0].Op)
	require.Equal(t, 1, count("tasks"), "the write after the refused one was made")

	// Events the log has already: the batch stops after the log write.
	ev := activities.EventRecord{ID: "ev-1", Type: "email_opened", At: now}
	_, err = f.recordEvents(activities.RecordEventsInput{CustomerID: id, Key: "run/1", Events: []activities.EventRecord{ev}})
	require.NoError(t, err)
	ev2 := activities.EventRecord{ID: "ev-2", Type: "pricing_viewed", At: now}
	score := activities.ScoreInput{Key: id + "/j1/score/2", CustomerID: id, Score: 40, Fit: 28, Behaviour: 12, At: now}
	res, err = f.writeCRM(
		activities.CRMWrite{Events: &activities.RecordEventsInput{CustomerID: id, Key: "run/2", StopUnlessAllNew: true,
			Events: []activities.EventRecord{ev, ev2}}},
		activities.CRMWrite{Score: &score})
	require.NoError(t, err)
	require.True(t, res.Stopped)
	require.Equal(t, 1, res.Done)
	require.Equal(t, []string{"ev-2"}, res.New)
	require.Equal(t, 1, count("score_history"), "the score computed on the wrong assumption was not written")
	require.Equal(t, 2, count("events"), "the new event is in the log")
}

// Event ids are unique per customer: the same id from another customer is
// another event.
func TestEventIDsArePerCustomer(t *testing.T) {
	t.Parallel()
	f := newCRMFixture(t)
	a, _ := newCustomer("ida")
	b, _ := newCustomer("idb")
	ev := []activities.EventRecord{{ID: "evt-1", Type: "pricing_viewed", At: time.Now().UTC()}}
	ra, err := f.recordEvents(activities.RecordEventsInput{CustomerID: a, Key: "a/1", Events: ev})
	require.NoError(t, err)
	rb, err := f.recordEvents(activities.RecordEventsInput{CustomerID: b, Key: "b/1", Events: ev})
	require.NoError(t, err)
	require.Equal(t, []string{"evt-1"}, ra.New)
	require.Equal(t, []string{"evt-1"}, rb.New, "another customer's event with the same id is new")
	stored, err := f.store.EventsOf(f.ctx, b)
	require.NoError(t, err)
	require.Len(t, stored, 1)
}

// LoadCampaign returns the definition the journey records; a campaign this
// worker does not have is a retryable error (a worker that has it may pick
// the task up).
func TestLoadCampaign(t *testing.T) {
	t.Parallel()
	f := newCRMFixture(t)
	load := func(in activities.LoadCampaignInput) (*campaign.Campaign, error) {
		v, err := f.env().ExecuteActivity(f.acts.LoadCampaign, in)
		if err != nil {
			return nil, err
		}
		var c campaign.Campaign
		require.NoError(t, v.Get(&c))
		return &c, nil
	}

	c, err := load(activities.LoadCampaignInput{ID: campaignID, Version: campaignVersion})
	require.NoError(t, err)
	require.Equal(t, campaignID, c.ID)
	require.Equal(t, campaignVersion, c.Version)
	require.Equal(t, f.camp.Trial.Steps, c.Trial.Steps, "the definition survives the round trip through history")
	require.Equal(t, f.camp.Scoring.SourcePoints, c.Scoring.SourcePoints)

	latest, err := f.acts.Campaigns.Latest(campaignID)
	require.NoError(t, err)
	c, err = load(activities.LoadCampaignInput{ID: campaignID, Latest: true})
	require.NoError(t, err)
	require.Equal(t, latest.Version, c.Version)

	_, err = load(activities.LoadCampaignInput{ID: campaignID, Version: "v999"})
	requireRetryable(t, err)
	require.Contains(t, err.Error(), "v999")
}
