package simulate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
)

// recorder collects the timeline in the order things happen. Every entry
// gets the next sequence number, so entries at the same instant keep the
// order in which the journey did them.
type recorder struct {
	mu      sync.Mutex
	seq     float64
	entries []Entry
	// anchors: the sequence number of the last scripted signal delivered
	// at an instant; the journey's own notes about that signal (score,
	// ignored, duplicate) are placed right after it.
	anchors map[time.Time]float64
}

func newRecorder() *recorder { return &recorder{anchors: map[time.Time]float64{}} }

func (r *recorder) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e.order = r.seq
	e.At = e.At.UTC()
	r.entries = append(r.entries, e)
}

// anchor marks a scripted signal delivered at `at`, optionally with an
// entry of its own.
func (r *recorder) anchor(at time.Time, e *Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.anchors[at.UTC()] = r.seq
	if e != nil {
		e.order = r.seq
		e.At = at.UTC()
		r.entries = append(r.entries, *e)
	}
}

// simCRM is the in-memory CRM and mailer the simulated journey talks to.
// It implements the activities the journey calls (same names as
// activities.Activities) and behaves like the real ones where the journey
// depends on it: the event log answers which events are new, sends are
// keyed, suppressed addresses get no marketing mail, and every email is
// rendered from the campaign with campaign.Render, so a template that fails
// for this customer fails here.
type simCRM struct {
	mu  sync.Mutex
	now func() time.Time
	reg *campaign.Registry
	rec *recorder

	events      map[string]bool
	transitions map[string]bool
	sentKeys    map[string]bool
	suppressed  map[string]string // lower-case address -> reason
	contact     activities.Contact
	hasContact  bool
	owner       string // delivery owner recorded so far

	stage        campaign.Stage
	stageEntered time.Time
	lastAskDue   time.Time
}

var (
	_ activities.JourneyActivities = (*simCRM)(nil)
	_ activities.CRMWriter         = (*simCRM)(nil)
)

func newSimCRM(reg *campaign.Registry, rec *recorder) *simCRM {
	return &simCRM{reg: reg, rec: rec, events: map[string]bool{}, transitions: map[string]bool{},
		sentKeys: map[string]bool{}, suppressed: map[string]string{}}
}

// LoadCampaign returns the definition without template bodies, as the real
// activity does: the journey never sees them.
func (f *simCRM) LoadCampaign(_ context.Context, in activities.LoadCampaignInput) (*campaign.Campaign, error) {
	var c *campaign.Campaign
	var err error
	if in.Latest || in.Version == "" {
		c, err = f.reg.Latest(in.ID)
	} else {
		c, err = f.reg.Get(in.ID, in.Version)
	}
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrBadInput, err)
	}
	return c.WithoutTemplateBodies(), nil
}

// UpsertContact keeps the profile (for fit scoring and the time zone).
func (f *simCRM) UpsertContact(_ context.Context, in activities.Contact) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contact, f.hasContact = in, true
	if in.DeliveryOwnerEmail != "" && in.DeliveryOwnerEmail != f.owner {
		f.owner = in.DeliveryOwnerEmail
		f.rec.add(Entry{At: f.now(), Kind: KindCRM, To: in.DeliveryOwnerEmail, Detail: "delivery owner " + in.DeliveryOwnerEmail})
	}
	return nil
}

// WriteCRM makes a batch of CRM writes as the real activity does, with
// the simulated CRM's writers.
func (f *simCRM) WriteCRM(ctx context.Context, in activities.WriteCRMInput) (activities.WriteCRMResult, error) {
	return activities.ApplyWrites(ctx, f, in)
}

// RecordScore keeps nothing: the timeline shows the journey's own score
// notes.
func (f *simCRM) RecordScore(context.Context, activities.ScoreInput) error { return nil }

// RecordEvents is the event log: it answers which ids are new.
func (f *simCRM) RecordEvents(_ context.Context, in activities.RecordEventsInput) (activities.RecordEventsResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res activities.RecordEventsResult
	for _, e := range in.Events {
		if !f.events[e.ID] {
			f.events[e.ID] = true
			res.New = append(res.New, e.ID)
		}
	}
	return res, nil
}

// RecordTransition records a stage change (once per key).
func (f *simCRM) RecordTransition(_ context.Context, in activities.TransitionInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.transitions[in.Key] {
		return nil
	}
	f.transitions[in.Key] = true
	f.stage, f.stageEntered = in.To, in.At
	f.rec.add(Entry{At: in.At, Kind: KindStage, Stage: string(in.To),
		Detail: fmt.Sprintf("%s → %s: %s", in.From, in.To, in.Reason)})
	return nil
}

// SendEmail renders and "sends" an email: the timeline gets its journey
// time, template and rendered subject.
func (f *simCRM) SendEmail(_ context.Context, in activities.SendEmailInput) (activities.SendEmailResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	c, err := f.reg.Get(in.CampaignID, in.CampaignVersion)
	if err != nil {
		return activities.SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrBadInput, err)
	}
	// Notices to an owner (handoff, escalation, churn alert) carry the
	// customer they are about; mail to the customer does not.
	kind := KindEmail
	if _, notice := in.Data.Extra[campaign.ExtraCustomerID]; notice {
		kind = KindNotice
	}
	data := in.Data
	tpl, ok := c.Templates[in.Template]
	category := tpl.CategoryOrDefault()
	if ok && category != campaign.Transactional {
		data.UnsubscribeURL = campaign.SampleUnsubscribeURL
	}
	e := Entry{At: now, Kind: kind, Template: in.Template, Step: in.Step, To: in.To, Category: string(category)}
	r, err := c.Render(in.Template, data)
	if err != nil {
		e.Status, e.Detail = StatusFailed, err.Error()
		f.rec.add(e)
		return activities.SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTemplate, err)
	}
	if f.sentKeys[in.Key] {
		return activities.SendEmailResult{Status: activities.SendDuplicate}, nil
	}
	f.sentKeys[in.Key] = true
	e.Subject = r.Subject
	if reason, sup := f.suppressed[strings.ToLower(in.To)]; sup && (reason != "unsubscribed" || category == campaign.Marketing) {
		e.Status, e.Detail = StatusSuppressed, "address "+reason
		f.rec.add(e)
		return activities.SendEmailResult{Status: activities.SendSuppressed, Reason: "address suppressed"}, nil
	}
	e.Status = StatusSent
	if kind == KindEmail && category == campaign.Marketing {
		e.Due, e.Note = f.timing(c, in.Step, now)
	}
	f.rec.add(e)
	return activities.SendEmailResult{Status: activities.SendSent}, nil
}

// timing explains why a marketing email went out later than its step was
// due: quiet hours in the customer's zone, or the frequency cap.
func (f *simCRM) timing(c *campaign.Campaign, step string, at time.Time) (*time.Time, string) {
	due, ok := f.due(c, step)
	if !ok || !at.After(due.Add(time.Second)) {
		return nil, ""
	}
	loc := time.UTC
	if l, err := campaign.LoadLocation(f.contact.TimeZone); err == nil && f.contact.TimeZone != "" {
		loc = l
	}
	when := due.In(loc).Format("Mon 15:04")
	if q := c.Sending.QuietHours; q != nil && q.NextAllowed(due, loc).Equal(at) {
		return &due, fmt.Sprintf("held by quiet hours %s–%s (due %s)", q.Start, q.End, when)
	}
	if fc := c.Sending.FrequencyCap; fc != nil {
		return &due, fmt.Sprintf("delayed by the frequency cap, at most %d in %s (due %s)", fc.Max, campaign.FormatDuration(fc.Window.D()), when)
	}
	return &due, "due " + when
}

// due is when a marketing step was due before quiet hours and the cap.
func (f *simCRM) due(c *campaign.Campaign, step string) (time.Time, bool) {
	var steps []campaign.Step
	switch f.stage {
	case campaign.StageTrial:
		steps = c.Trial.Steps
	case campaign.StageNurture:
		steps = c.Nurture.Steps
	case campaign.StageOnboarding:
		steps = c.Onboarding.Steps
	case campaign.StageAtRisk:
		steps = c.AtRisk.WinBack
	case campaign.StageActive:
		if strings.HasPrefix(step, "ask-") {
			from := f.stageEntered
			if f.lastAskDue.After(from) {
				from = f.lastAskDue
			}
			due := from.Add(c.Active.AskEvery.D())
			f.lastAskDue = due
			return due, true
		}
		return time.Time{}, false // holidays go out at their cron time
	case campaign.StageChurned:
		var n int
		if _, err := fmt.Sscanf(step, "win-back-%d", &n); err == nil && n > 0 {
			return f.stageEntered.Add(time.Duration(n) * c.Churned.Every.D()), true
		}
	}
	for _, s := range steps {
		if s.ID == step {
			return f.stageEntered.Add(s.Offset.D()), true
		}
	}
	return time.Time{}, false
}

// CreateHandoff records the handoff to sales with its reasons.
func (f *simCRM) CreateHandoff(_ context.Context, in activities.HandoffInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	parts := make([]string, len(in.Reasons))
	for i, r := range in.Reasons {
		parts[i] = r.String()
	}
	f.rec.add(Entry{At: now, Kind: KindSales, To: in.OwnerEmail, Detail: fmt.Sprintf("handoff to %s at score %d (%s); accept within %s",
		in.OwnerEmail, in.Score, strings.Join(parts, ", "), campaign.FormatDuration(in.SLADue.Sub(now)))})
	return nil
}

// SetHandoffStatus records what became of the handoff.
func (f *simCRM) SetHandoffStatus(_ context.Context, in activities.HandoffStatusInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	detail := map[string]string{
		"accepted":  "handoff accepted by sales",
		"escalated": "handoff escalated: not accepted within the SLA",
		"won":       "deal won",
		"lost":      "deal lost",
		"rejected":  "sales rejected the lead",
	}[in.Status]
	if detail == "" {
		detail = "handoff " + in.Status
	}
	f.rec.add(Entry{At: f.now(), Kind: KindSales, Detail: detail})
	return nil
}

// CreateTask records a task for the account owner.
func (f *simCRM) CreateTask(_ context.Context, in activities.TaskInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.rec.add(Entry{At: now, Kind: KindTask, To: in.OwnerEmail, Detail: fmt.Sprintf("%s for %s: %q, due in %s",
		in.Kind, in.OwnerEmail, in.Title, campaign.FormatDuration(in.DueAt.Sub(now)))})
	return nil
}

// Suppress puts the address on the suppression list.
func (f *simCRM) Suppress(_ context.Context, in activities.SuppressInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.suppressed[strings.ToLower(in.Email)] = in.Reason
	f.rec.add(Entry{At: f.now(), Kind: KindSuppress, Detail: fmt.Sprintf("%s suppressed: %s", in.Email, in.Reason)})
	return nil
}

// EraseContact forgets the contact.
func (f *simCRM) EraseContact(_ context.Context, in activities.EraseInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contact = activities.Contact{CustomerID: in.CustomerID}
	f.rec.add(Entry{At: f.now(), Kind: KindErase, Detail: "personal data erased from the CRM (tombstone kept)"})
	return nil
}
