// Package inmemory is the journey's activities without PostgreSQL or SMTP:
// a CRM and a mailer in memory, for the code that runs the real journey
// workflow in Temporal's test environment — the workflow tests and
// `starter simulate`.
//
// It behaves like the real activities (package activities) where the
// journey depends on them: LoadCampaign hands out the definition without
// template bodies, and a missing campaign is an error the journey retries;
// the event log answers which events are new; writes are idempotent by
// their keys; a send renders the template from the campaign (a template
// that fails for this customer fails here, non-retryably), sends once per
// key, and suppressed addresses get no mail the send ledger would refuse.
//
// What its users need besides: faults to inject — the CRM away until a
// time, a campaign missing until a time, a send's outcome (SetSendHook) —
// and hooks that see every CRM write and every email as it happens
// (OnWrite, OnMail); Records returns what was written and sent.
package inmemory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

// CRM is the in-memory CRM and mailer. Register its Activities with a test
// environment; set the clock, faults and hooks before the journey runs. It
// is safe for concurrent use.
type CRM struct {
	mu  sync.Mutex
	reg *campaign.Registry
	now func() time.Time

	crmDownUntil         time.Time
	campaignMissingUntil time.Time
	sendHook             SendHook
	onWrite              func(now time.Time, w activities.CRMWrite)
	onMail               func(Mail)

	rec Records
	// Keys and ids already written: a retried write changes nothing.
	keys    map[string]bool
	eventID map[string]bool
	// sendKeys are the send keys the ledger holds (sent or suppressed): a
	// later send of one is a duplicate. A deferred send holds none.
	sendKeys map[string]bool
}

// Records is what the CRM and the mailer did, in the order they did it.
type Records struct {
	// Writes lists the kind (activities.CRMWrite.Op) of every write the CRM
	// took, in order; a retried one twice. WriteAttempts counts the
	// WriteCRM calls, those that failed while the CRM was away included.
	Writes        []string
	WriteAttempts int

	Contacts        []activities.Contact
	Events          []activities.EventRecord // new events only
	Transitions     []activities.TransitionInput
	Scores          []activities.ScoreInput
	Handoffs        []activities.HandoffInput
	HandoffStatuses map[string][]string // by handoff key, in order
	Tasks           []activities.TaskInput
	// Suppressed maps a lower-case address to its suppression reason.
	Suppressed map[string]string
	Erased     []string // customer ids
	// Tags maps a customer id to its tags (sorted, distinct).
	Tags map[string][]string

	// Mail lists every email the mailer handled: sent, suppressed, or not
	// rendered (Status SendFailed). A retry of a send is not listed again,
	// nor is a send the contact policy deferred (nothing was sent, and the
	// ledger holds nothing for its key).
	Mail []Mail
	// SendAttempts counts the sends per key that got as far as the ledger
	// (the template rendered), deferred ones included.
	SendAttempts map[string]int
}

// Sent is the mail that went out.
func (r Records) Sent() []Mail {
	var out []Mail
	for _, m := range r.Mail {
		if m.Status == activities.SendSent {
			out = append(out, m)
		}
	}
	return out
}

// Mail is an email the mailer handled.
type Mail struct {
	// At is the clock's time, in UTC.
	At time.Time
	activities.SendEmailInput
	Category customer.Category
	// Subject is the rendered subject (empty when it did not render).
	Subject string
	// Status is activities.SendSent, SendSuppressed or, when the template
	// did not render, SendFailed; Reason says why it was not sent.
	Status string
	Reason string
}

// SendHook decides a send's outcome before the mailer's own rules, for a
// test that injects a fault: it returns nil to let the send go on.
type SendHook func(now time.Time, in activities.SendEmailInput) *Outcome

// Outcome is what a SendHook makes a send return.
type Outcome struct {
	Result activities.SendEmailResult
	Err    error
}

// New returns an empty CRM whose campaigns come from reg; its clock is
// time.Now until SetClock.
func New(reg *campaign.Registry) *CRM {
	return &CRM{
		reg: reg, now: time.Now,
		rec:  Records{HandoffStatuses: map[string][]string{}, Suppressed: map[string]string{}, SendAttempts: map[string]int{}},
		keys: map[string]bool{}, eventID: map[string]bool{}, sendKeys: map[string]bool{},
	}
}

// SetClock sets the clock (the test environment's Now): times recorded,
// faults and hooks use it.
func (c *CRM) SetClock(now func() time.Time) { c.locked(func() { c.now = now }) }

// SetCRMDownUntil makes WriteCRM fail like an unreachable database before t.
func (c *CRM) SetCRMDownUntil(t time.Time) { c.locked(func() { c.crmDownUntil = t }) }

// SetCampaignMissingUntil makes LoadCampaign fail like a worker without the
// campaign file before t.
func (c *CRM) SetCampaignMissingUntil(t time.Time) { c.locked(func() { c.campaignMissingUntil = t }) }

// SetSendHook sets the hook that may decide a send's outcome. It runs with
// the CRM locked: it gets the clock's time and must not call the CRM.
func (c *CRM) SetSendHook(h SendHook) { c.locked(func() { c.sendHook = h }) }

// OnWrite sets a hook called with every CRM write that changed something,
// after it is made. Hooks run one at a time and must not call the CRM.
func (c *CRM) OnWrite(f func(now time.Time, w activities.CRMWrite)) {
	c.locked(func() { c.onWrite = f })
}

// OnMail sets a hook called with every email the mailer handled (see
// Records.Mail). Hooks run one at a time and must not call the CRM.
func (c *CRM) OnMail(f func(Mail)) { c.locked(func() { c.onMail = f }) }

// Now is the CRM's clock.
func (c *CRM) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now()
}

// Records returns a copy of what the CRM and the mailer did so far.
func (c *CRM) Records() Records {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rec
	r.Writes = slices.Clone(r.Writes)
	r.Contacts = slices.Clone(r.Contacts)
	r.Events = slices.Clone(r.Events)
	r.Transitions = slices.Clone(r.Transitions)
	r.Scores = slices.Clone(r.Scores)
	r.Handoffs = slices.Clone(r.Handoffs)
	r.HandoffStatuses = map[string][]string{}
	for k, v := range c.rec.HandoffStatuses {
		r.HandoffStatuses[k] = slices.Clone(v)
	}
	r.Tasks = slices.Clone(r.Tasks)
	r.Suppressed = maps.Clone(c.rec.Suppressed)
	r.Erased = slices.Clone(r.Erased)
	r.Tags = map[string][]string{}
	for k, v := range c.rec.Tags {
		r.Tags[k] = slices.Clone(v)
	}
	r.Mail = slices.Clone(r.Mail)
	r.SendAttempts = maps.Clone(c.rec.SendAttempts)
	return r
}

func (c *CRM) locked(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
}

// Activities are the activities of the CRM, to register with a test
// environment: their exported methods are exactly the journey's activities
// and the CRM writes (the registry registers every exported method).
func (c *CRM) Activities() *Activities { return &Activities{c} }

// Activities implements the journey's activities on a CRM.
type Activities struct{ crm *CRM }

var (
	_ activities.JourneyActivities = (*Activities)(nil)
	_ activities.CRMWriter         = (*Activities)(nil)
)

// LoadCampaign returns the definition without template bodies, as the real
// activity does; a missing one is a retryable error (the journey waits).
func (a *Activities) LoadCampaign(_ context.Context, in activities.LoadCampaignInput) (*campaign.Campaign, error) {
	c := a.crm
	c.mu.Lock()
	missing := c.now().Before(c.campaignMissingUntil)
	c.mu.Unlock()
	if missing {
		return nil, fmt.Errorf("load campaign: campaign %s version %q is not deployed", in.ID, in.Version)
	}
	var camp *campaign.Campaign
	var err error
	if in.Latest || in.Version == "" {
		camp, err = c.reg.Latest(in.ID)
	} else {
		camp, err = c.reg.Get(in.ID, in.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("load campaign: %w", err)
	}
	return camp.WithoutTemplateBodies(), nil
}

// errCRMDown is what WriteCRM says while the CRM is away.
var errCRMDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

// WriteCRM makes a batch of writes in order, as the real activity does
// (activities.ApplyWrites), unless the CRM is away.
func (a *Activities) WriteCRM(ctx context.Context, in activities.WriteCRMInput) (activities.WriteCRMResult, error) {
	c := a.crm
	c.mu.Lock()
	c.rec.WriteAttempts++
	down := c.now().Before(c.crmDownUntil)
	if !down {
		for _, w := range in.Writes {
			c.rec.Writes = append(c.rec.Writes, w.Op())
		}
	}
	c.mu.Unlock()
	if down {
		return activities.WriteCRMResult{}, errCRMDown
	}
	return activities.ApplyWrites(ctx, a, in)
}

// write runs f under the lock and, when f reports a change, the OnWrite
// hook with w.
func (c *CRM) write(w activities.CRMWrite, f func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f() && c.onWrite != nil {
		c.onWrite(c.now(), w)
	}
}

// once reports whether key is new, and remembers it.
func (c *CRM) once(key string) bool {
	if c.keys[key] {
		return false
	}
	c.keys[key] = true
	return true
}

// UpsertContact records the profile.
func (a *Activities) UpsertContact(_ context.Context, in activities.Contact) error {
	a.crm.write(activities.CRMWrite{Contact: &in}, func() bool {
		a.crm.rec.Contacts = append(a.crm.rec.Contacts, in)
		return true
	})
	return nil
}

// RecordEvents is the event log: it answers which ids are new for the
// customer.
func (a *Activities) RecordEvents(_ context.Context, in activities.RecordEventsInput) (activities.RecordEventsResult, error) {
	c := a.crm
	var res activities.RecordEventsResult
	c.write(activities.CRMWrite{Events: &in}, func() bool {
		for _, e := range in.Events {
			if id := in.CustomerID + "/" + e.ID; !c.eventID[id] {
				c.eventID[id] = true
				c.rec.Events = append(c.rec.Events, e)
				res.New = append(res.New, e.ID)
			}
		}
		return len(res.New) > 0
	})
	return res, nil
}

// RecordTransition records a stage change, once per key.
func (a *Activities) RecordTransition(_ context.Context, in activities.TransitionInput) error {
	c := a.crm
	in.At = in.At.UTC()
	c.write(activities.CRMWrite{Transition: &in}, func() bool {
		if !c.once("transition/" + in.Key) {
			return false
		}
		c.rec.Transitions = append(c.rec.Transitions, in)
		return true
	})
	return nil
}

// RecordScore records a score, once per key.
func (a *Activities) RecordScore(_ context.Context, in activities.ScoreInput) error {
	c := a.crm
	c.write(activities.CRMWrite{Score: &in}, func() bool {
		if !c.once("score/" + in.Key) {
			return false
		}
		c.rec.Scores = append(c.rec.Scores, in)
		return true
	})
	return nil
}

// CreateHandoff records a handoff to sales, once per key.
func (a *Activities) CreateHandoff(_ context.Context, in activities.HandoffInput) error {
	c := a.crm
	c.write(activities.CRMWrite{Handoff: &in}, func() bool {
		if !c.once("handoff/" + in.Key) {
			return false
		}
		c.rec.Handoffs = append(c.rec.Handoffs, in)
		return true
	})
	return nil
}

// SetHandoffStatus records what became of a handoff.
func (a *Activities) SetHandoffStatus(_ context.Context, in activities.HandoffStatusInput) error {
	c := a.crm
	c.write(activities.CRMWrite{HandoffStatus: &in}, func() bool {
		c.rec.HandoffStatuses[in.Key] = append(c.rec.HandoffStatuses[in.Key], in.Status)
		return true
	})
	return nil
}

// CreateTask records a task for an owner, once per key.
func (a *Activities) CreateTask(_ context.Context, in activities.TaskInput) error {
	c := a.crm
	c.write(activities.CRMWrite{Task: &in}, func() bool {
		if !c.once("task/" + in.Key) {
			return false
		}
		c.rec.Tasks = append(c.rec.Tasks, in)
		return true
	})
	return nil
}

// Suppress puts the address on the suppression list.
func (a *Activities) Suppress(_ context.Context, in activities.SuppressInput) error {
	c := a.crm
	c.write(activities.CRMWrite{Suppress: &in}, func() bool {
		c.rec.Suppressed[strings.ToLower(in.Email)] = in.Reason
		return true
	})
	return nil
}

// SetTags changes the customer's tags as the CRM does (a set).
func (a *Activities) SetTags(_ context.Context, in activities.TagsInput) error {
	c := a.crm
	c.write(activities.CRMWrite{Tags: &in}, func() bool {
		if c.rec.Tags == nil {
			c.rec.Tags = map[string][]string{}
		}
		tags := append(slices.Clone(c.rec.Tags[in.CustomerID]), in.Add...)
		tags = slices.DeleteFunc(tags, func(t string) bool { return slices.Contains(in.Remove, t) })
		slices.Sort(tags)
		c.rec.Tags[in.CustomerID] = slices.Compact(tags)
		return true
	})
	return nil
}

// EraseContact records the erase.
func (a *Activities) EraseContact(_ context.Context, in activities.EraseInput) error {
	c := a.crm
	c.write(activities.CRMWrite{Erase: &in}, func() bool {
		c.rec.Erased = append(c.rec.Erased, in.CustomerID)
		return true
	})
	return nil
}

// SendEmail renders the email and "sends" it once per key, as the real
// activity does: a template that does not render is a non-retryable
// error; a suppressed address gets no mail that its suppression blocks
// (customer.BlocksMail); a marketing email with in.Policy whose key is new
// is deferred (SendDeferred, DeferredUntil, the rule as Reason) when the
// marketing mail this mailer sent to the customer breaks the policy at the
// clock's now — the ledger's rule, crm.ContactPolicy.Decide — and then
// nothing is sent or recorded for its key.
func (a *Activities) SendEmail(_ context.Context, in activities.SendEmailInput) (activities.SendEmailResult, error) {
	c := a.crm
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.sendHook != nil {
		if out := c.sendHook(now, in); out != nil {
			return out.Result, out.Err
		}
	}
	camp, err := c.reg.Get(in.CampaignID, in.CampaignVersion)
	if err != nil {
		return activities.SendEmailResult{}, fmt.Errorf("send email: %w", err)
	}
	tpl, ok := camp.Templates[in.Template]
	data := in.Data
	if ok && tpl.IsMarketing() {
		data.UnsubscribeURL = campaign.SampleUnsubscribeURL
	}
	m := Mail{At: now.UTC(), SendEmailInput: in, Category: tpl.CategoryOrDefault()}
	r, err := camp.Render(in.Template, data)
	if err != nil {
		m.Status, m.Reason = activities.SendFailed, err.Error()
		c.mailed(m)
		return activities.SendEmailResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTemplate, err)
	}
	c.rec.SendAttempts[in.Key]++
	if c.sendKeys[in.Key] {
		return activities.SendEmailResult{Status: activities.SendDuplicate}, nil
	}
	m.Subject = r.Subject
	if reason, ok := c.rec.Suppressed[strings.ToLower(in.To)]; ok && customer.BlocksMail(reason, m.Category) {
		c.sendKeys[in.Key] = true
		m.Status, m.Reason = activities.SendSuppressed, "address "+reason
		c.mailed(m)
		return activities.SendEmailResult{Status: activities.SendSuppressed, Reason: "address suppressed"}, nil
	}
	if in.Policy != nil && m.Category == customer.CategoryMarketing {
		if until, rule := in.Policy.Ledger().Decide(now, c.marketingSent(in.CustomerID)); !until.IsZero() {
			reason := campaign.ReasonMinGap
			if rule == crm.SkipFrequencyCap {
				reason = campaign.ReasonFrequencyCap
			}
			return activities.SendEmailResult{Status: activities.SendDeferred, Reason: reason, DeferredUntil: until}, nil
		}
	}
	c.sendKeys[in.Key] = true
	m.Status = activities.SendSent
	c.mailed(m)
	return activities.SendEmailResult{Status: activities.SendSent}, nil
}

// marketingSent is when the mailer sent marketing mail to the customer;
// the caller holds the lock. (The ledger also counts sends in flight; here
// a send completes under the lock.)
func (c *CRM) marketingSent(customerID string) []time.Time {
	var out []time.Time
	for _, m := range c.rec.Mail {
		if m.CustomerID == customerID && m.Status == activities.SendSent && m.Category == customer.CategoryMarketing {
			out = append(out, m.At)
		}
	}
	return out
}

// mailed records m and tells the hook; the caller holds the lock.
func (c *CRM) mailed(m Mail) {
	c.rec.Mail = append(c.rec.Mail, m)
	if c.onMail != nil {
		c.onMail(m)
	}
}
