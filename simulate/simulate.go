// Package simulate previews a campaign: it runs the real journey workflow
// (workflows.CustomerJourney) for one scripted customer in Temporal's
// time-skipping test environment, with the activities replaced by the
// in-memory CRM and mailer of package inmemory (the workflow tests' too),
// and returns the timeline of what the journey
// would do — every email with its time in the customer's zone, template
// and rendered subject, stage changes and why, sends that were moved or
// skipped and why, and where the journey ends up.
//
// A year of journey time takes well under a second: timers are skipped,
// nothing touches a network. The journey continues-as-new at every stage
// boundary; the driver (package simulate/driver) follows it across runs as
// the Temporal server would.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/simulate/driver"
	"github.com/acme/lifecycle/workflows"
)

// Kinds of timeline entries.
const (
	KindEvent     = "event"     // a scripted event arrives
	KindSignup    = "signup"    // the signup arrives (journey's note, with the fit score)
	KindStage     = "stage"     // stage change and why
	KindEmail     = "email"     // email to the customer
	KindNotice    = "notice"    // transactional notice to an owner (handoff, escalation, churn alert)
	KindSkipped   = "skipped"   // a step that was not sent, and why
	KindScore     = "score"     // the lead score changed
	KindSales     = "sales"     // handoff to sales and what became of it
	KindTask      = "task"      // CRM task for the account owner
	KindCRM       = "crm"       // other CRM writes worth knowing (delivery owner)
	KindSuppress  = "suppress"  // address put on the suppression list
	KindErase     = "erase"     // personal data erased
	KindIgnored   = "ignored"   // an event that had no effect, and why
	KindDuplicate = "duplicate" // an event seen before
	KindRejected  = "rejected"  // a malformed signal
	KindAdvocacy  = "advocacy"  // a review or referral: an advocate, and the asks it ends
	KindFeedback  = "feedback"  // an NPS answer and what follows (promoter, passive, detractor)
	KindReminder  = "reminder"  // a reminder date set, moved or cleared
	KindNote      = "note"      // other notes of the journey
	KindEnd       = "end"       // the journey ended
	KindError     = "error"     // something failed (e.g. a CRM write)
)

// Email statuses.
const (
	StatusSent       = "sent"
	StatusSuppressed = "suppressed"
	StatusFailed     = "failed" // the template did not render
)

// Entry is one line of the timeline.
type Entry struct {
	At       time.Time  `json:"at"`
	Day      int        `json:"day"`
	Kind     string     `json:"kind"`
	Template string     `json:"template,omitempty"`
	Step     string     `json:"step,omitempty"`
	Subject  string     `json:"subject,omitempty"`
	To       string     `json:"to,omitempty"`
	Category string     `json:"category,omitempty"`
	Status   string     `json:"status,omitempty"`
	Stage    string     `json:"stage,omitempty"`
	Detail   string     `json:"detail,omitempty"`
	Due      *time.Time `json:"due,omitempty"`
	// Note says why a send went out later than due.
	Note string `json:"note,omitempty"`

	order float64
}

// Result is a finished simulation.
type Result struct {
	Campaign       string    `json:"campaign"`
	CampaignSource string    `json:"campaign_source,omitempty"`
	Script         string    `json:"script,omitempty"`
	Customer       Customer  `json:"customer"`
	TimeZone       string    `json:"time_zone"`
	Start          time.Time `json:"start"`
	Until          time.Time `json:"until"`
	Timeline       []Entry   `json:"timeline"`
	Final          Final     `json:"final"`
	Emails         Counts    `json:"emails"`
	// Runs is how many workflow runs the journey took (it continues as new
	// at every stage boundary).
	Runs int `json:"runs"`
	// NotDelivered are scripted events after the end of the simulation.
	NotDelivered []ScriptEvent `json:"not_delivered,omitempty"`
	// TimelineGap is set when the journey noted more in one stretch than
	// the simulator could collect (some skip/score notes may be missing).
	TimelineGap bool `json:"timeline_gap,omitempty"`

	loc *time.Location
}

// Final is where the journey stands at the end.
type Final struct {
	Stage          string                  `json:"stage"`
	Since          time.Time               `json:"since"`
	Score          int                     `json:"score"`
	Fit            int                     `json:"fit"`
	Behaviour      int                     `json:"behaviour"`
	Threshold      int                     `json:"threshold"`
	TopReasons     []workflows.ScoreReason `json:"top_reasons,omitempty"`
	NextStep       string                  `json:"next_step,omitempty"`
	NextAt         time.Time               `json:"next_at,omitzero"`
	MailSuppressed bool                    `json:"mail_suppressed,omitempty"`
	// Ended is set when the journey finished before the end of the
	// simulation (unsubscribed, erased, churned with mode end, no signup).
	Ended     bool      `json:"ended,omitempty"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`
}

// Counts summarises the emails.
type Counts struct {
	ToCustomer    int `json:"to_customer"`
	Marketing     int `json:"marketing"`
	Transactional int `json:"transactional"`
	Notices       int `json:"notices"`
	Moved         int `json:"moved"`
	Skipped       int `json:"skipped"`
	Suppressed    int `json:"suppressed"`
	Failed        int `json:"failed"`
}

// Options configure a simulation.
type Options struct {
	// Campaign is the definition to run, with its templates.
	Campaign *campaign.Campaign
	Script   *Script
	// Until is how long after the script's start to simulate.
	Until time.Duration
	// Progress, when set, is called as journey time passes.
	Progress func(done, total time.Duration)
	// Logger receives the Temporal test environment's log (nil: none).
	Logger *slog.Logger
}

// observeEvery is how often the journey's own timeline is collected. The
// journey keeps its last 40 notes; collecting hourly never misses one
// unless a script sends dozens of events within an hour.
const observeEvery = 24 * time.Hour

// ErrTemplates is wrapped by Run's error when emails failed to render.
var ErrTemplates = errors.New("templates failed to render")

// Run simulates the script against the campaign. The result is complete
// even when it returns an error wrapping ErrTemplates (some emails did not
// render: they are in the timeline with status "failed").
func Run(ctx context.Context, o Options) (*Result, error) {
	c, s := o.Campaign, o.Script
	if c == nil || s == nil {
		return nil, errors.New("simulate: campaign and script are required")
	}
	if o.Until <= 0 {
		return nil, fmt.Errorf("simulate: until must be positive (got %s)", o.Until)
	}
	if err := s.CheckEvents(c); err != nil {
		return nil, err
	}
	reg := campaign.NewRegistry()
	if err := reg.Add(c); err != nil {
		return nil, fmt.Errorf("campaign %s: %w", c.Key(), err)
	}
	loc := time.UTC
	zone := s.Customer.TimeZone
	if zone == "" {
		zone = c.DefaultTimeZone
	}
	if l, err := campaign.LoadLocation(zone); err == nil && zone != "" {
		loc = l
	} else {
		zone = "UTC"
	}
	until := s.Start.Add(o.Until)
	res := &Result{
		Campaign: c.Key(), CampaignSource: c.Source, Script: s.Source, Customer: s.Customer, TimeZone: zone,
		Start: s.Start, Until: until, loc: loc,
	}

	rec := newRecorder()
	crm := inmemory.New(reg)
	(&observer{rec: rec, reg: reg}).watch(crm)
	h := &harvest{rec: rec}

	signup := s.signup()
	signals := []*driver.Signal{{
		At: s.SignupAt, Name: workflows.SignalSignup, Payload: signup,
		OnSend: func() { rec.anchor(s.SignupAt, nil) },
	}}
	for _, e := range s.Events {
		if e.At.After(until) {
			res.NotDelivered = append(res.NotDelivered, e)
			continue
		}
		ev := workflows.Event{ID: e.ID, Type: e.Type, At: e.At, Properties: e.Properties}
		detail := e.Type
		if !strings.HasPrefix(e.ID, orDefault(s.Customer.ID, "customer")+"-") {
			detail += " (id " + e.ID + ")"
		}
		signals = append(signals, &driver.Signal{At: e.At, Name: workflows.SignalEvent, Payload: ev,
			OnSend: func() { rec.anchor(e.At, &Entry{Kind: KindEvent, Detail: detail}) }})
	}

	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(logger))

	var view workflows.JourneyView
	var haveView, stopped bool
	query := func(env *driver.Env) {
		v, err := env.QueryWorkflow(workflows.QueryState)
		if err != nil {
			return
		}
		var jv workflows.JourneyView
		if v.Get(&jv) == nil {
			view, haveView = jv, true
			h.collect(jv.Timeline)
		}
	}
	out, err := driver.Run[workflows.JourneyInput]{
		Suite:    &suite,
		Workflow: workflows.CustomerJourney,
		Name:     workflows.WorkflowName,
		Setup: func(env *driver.Env) {
			env.RegisterActivity(crm.Activities())
			crm.SetClock(env.Now)
		},
		Start:   s.Start,
		Until:   until,
		Signals: signals,
		Every:   observeEvery,
		Observe: func(env *driver.Env) {
			query(env)
			if o.Progress != nil {
				o.Progress(env.Now().Sub(s.Start), o.Until)
			}
			if ctx.Err() != nil && !stopped {
				stopped = true
				env.CancelWorkflow()
			}
		},
		AtDeadline: query,
		OnContinueAsNew: func(next workflows.JourneyInput, _ int) {
			if next.State != nil {
				h.collect(next.State.Timeline)
			}
		},
	}.Execute(workflows.JourneyInput{CustomerID: s.Customer.ID, CampaignID: c.ID, CampaignVersion: c.Version})
	if stopped {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("simulate: the journey failed: %w", err)
	}
	res.Runs = out.Runs
	if out.Completed {
		var jr workflows.JourneyResult
		if err := out.Env.GetWorkflowResult(&jr); err == nil {
			res.Final.Ended, res.Final.EndedAt, res.Final.EndReason = true, out.Ended.UTC(), jr.Reason
		}
		query(out.Env)
	}
	if haveView {
		res.Final.Stage, res.Final.Since = string(view.Stage), view.StageEnteredAt.UTC()
		res.Final.Score, res.Final.Fit, res.Final.Behaviour, res.Final.Threshold = view.Score, view.FitScore, view.BehaviourScore, view.Threshold
		res.Final.TopReasons, res.Final.MailSuppressed = view.TopReasons, view.MailSuppressed
		if !res.Final.Ended {
			res.Final.NextStep, res.Final.NextAt = view.NextStep, view.NextAt.UTC()
			if view.NextAt.IsZero() {
				res.Final.NextAt = time.Time{}
			}
		}
	}
	res.TimelineGap = h.gap
	res.Timeline = slices.Concat(rec.entries, h.entries)
	sort.SliceStable(res.Timeline, func(i, j int) bool {
		a, b := res.Timeline[i], res.Timeline[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return a.order < b.order
	})
	for i := range res.Timeline {
		e := &res.Timeline[i]
		e.Day = int(e.At.Sub(s.Start) / (24 * time.Hour))
		switch {
		case e.Kind == KindEmail && e.Status == StatusSent:
			res.Emails.ToCustomer++
			if e.Category == string(customer.CategoryTransactional) {
				res.Emails.Transactional++
			} else {
				res.Emails.Marketing++
			}
			if e.Note != "" {
				res.Emails.Moved++
			}
		case e.Kind == KindNotice && e.Status == StatusSent:
			res.Emails.Notices++
		case e.Kind == KindSkipped:
			res.Emails.Skipped++
		}
		switch e.Status {
		case StatusSuppressed:
			res.Emails.Suppressed++
		case StatusFailed:
			res.Emails.Failed++
		}
	}
	if res.Emails.Failed > 0 {
		return res, fmt.Errorf("%d email(s) of %s: %w for this customer (see the failed lines of the timeline)", res.Emails.Failed, c.Key(), ErrTemplates)
	}
	return res, nil
}

// harvest collects the journey's own timeline notes (which the CRM does not
// see: skips, score changes, ignored events) from the bounded timeline the
// journey keeps, snapshot by snapshot.
type harvest struct {
	rec     *recorder
	last    []workflows.TimelineEntry
	entries []Entry
	gap     bool
}

// shown maps the journey's note kinds to timeline kinds; kinds the CRM
// already records with more detail (stage, email, sales, suppressed) are
// left out.
var shown = map[string]string{
	"signup": KindSignup, "score": KindScore, "skipped": KindSkipped, "ignored": KindIgnored,
	"duplicate": KindDuplicate, "rejected": KindRejected, "event": KindNote, "campaign": KindNote,
	"end": KindEnd, "error": KindError,
	"advocacy": KindAdvocacy, "feedback": KindFeedback, "reminder": KindReminder,
}

func (h *harvest) collect(snap []workflows.TimelineEntry) {
	fresh := snap
	if len(h.last) > 0 {
		m := overlap(h.last, snap)
		if m == 0 && len(snap) > 0 {
			h.gap = true
		}
		fresh = snap[m:]
	}
	if len(snap) > 0 {
		h.last = append([]workflows.TimelineEntry(nil), snap...)
	}
	for i, n := range fresh {
		kind, ok := shown[n.Kind]
		if !ok || (n.Kind == "error" && strings.HasPrefix(n.Detail, "send ")) {
			continue // template failures are in the timeline from the mailer
		}
		at := n.At.UTC()
		h.rec.mu.Lock()
		base, anchored := h.rec.anchors[at]
		h.rec.mu.Unlock()
		order := -1e6 + float64(i)*1e-3 // before what the CRM saw at that instant
		if anchored {
			order = base + 0.5 + float64(i)*1e-4 // right after the signal it is about
		}
		if kind == KindEnd || kind == KindError {
			order = 1e12 + float64(i)
		}
		h.entries = append(h.entries, Entry{At: at, Kind: kind, Detail: n.Detail, order: order})
	}
}

// overlap is the length of the longest suffix of prev that is a prefix of
// next (entries compared by time and kind: erasure rewrites details).
func overlap(prev, next []workflows.TimelineEntry) int {
	for m := min(len(prev), len(next)); m > 0; m-- {
		ok := true
		for i := range m {
			a, b := prev[len(prev)-m+i], next[i]
			if !a.At.Equal(b.At) || a.Kind != b.Kind {
				ok = false
				break
			}
		}
		if ok {
			return m
		}
	}
	return 0
}
