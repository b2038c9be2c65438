package simulate

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/activities/inmemory"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
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

// observer turns what the in-memory CRM and mailer the simulated journey
// talks to (package inmemory, the workflow tests' fake too) do into
// timeline entries: stage changes and why, every email with its rendered
// subject and, for marketing mail that went out later than its step was
// due, why (quiet hours in the customer's zone, the frequency cap), the
// sales handoff and what became of it, tasks, suppressions, the erase. It
// keeps what explaining a send needs: the customer's zone, the stage and
// when it began. The CRM calls its hooks one at a time.
type observer struct {
	rec *recorder
	reg *campaign.Registry

	contact activities.Contact
	owner   string // delivery owner recorded so far
}

// watch makes o see what crm does.
func (o *observer) watch(crm *inmemory.CRM) {
	crm.OnWrite(o.write)
	crm.OnMail(o.mail)
}

// write records a CRM write worth a line of the timeline.
func (o *observer) write(now time.Time, w activities.CRMWrite) {
	switch {
	case w.Contact != nil:
		in := *w.Contact
		o.contact = in
		if in.DeliveryOwnerEmail != "" && in.DeliveryOwnerEmail != o.owner {
			o.owner = in.DeliveryOwnerEmail
			o.rec.add(Entry{At: now, Kind: KindCRM, To: in.DeliveryOwnerEmail, Detail: "delivery owner " + in.DeliveryOwnerEmail})
		}
	case w.Transition != nil:
		in := w.Transition
		o.rec.add(Entry{At: in.At, Kind: KindStage, Stage: string(in.To),
			Detail: fmt.Sprintf("%s → %s: %s", in.From, in.To, in.Reason)})
	case w.Handoff != nil:
		in := w.Handoff
		parts := make([]string, len(in.Reasons))
		for i, r := range in.Reasons {
			parts[i] = r.String()
		}
		o.rec.add(Entry{At: now, Kind: KindSales, To: in.OwnerEmail, Detail: fmt.Sprintf("handoff to %s at score %d (%s); accept within %s",
			in.OwnerEmail, in.Score, strings.Join(parts, ", "), campaign.FormatDuration(in.SLADue.Sub(now)))})
	case w.HandoffStatus != nil:
		detail := map[string]string{
			customer.HandoffAccepted:  "handoff accepted by sales",
			customer.HandoffEscalated: "handoff escalated: not accepted within the SLA",
			customer.HandoffWon:       "deal won",
			customer.HandoffLost:      "deal lost",
			customer.HandoffRejected:  "sales rejected the lead",
		}[w.HandoffStatus.Status]
		if detail == "" {
			detail = "handoff " + w.HandoffStatus.Status
		}
		o.rec.add(Entry{At: now, Kind: KindSales, Detail: detail})
	case w.Task != nil:
		in := w.Task
		o.rec.add(Entry{At: now, Kind: KindTask, To: in.OwnerEmail, Detail: fmt.Sprintf("%s for %s: %q, due in %s",
			in.Kind, in.OwnerEmail, in.Title, campaign.FormatDuration(in.DueAt.Sub(now)))})
	case w.Suppress != nil:
		o.rec.add(Entry{At: now, Kind: KindSuppress, Detail: fmt.Sprintf("%s suppressed: %s", w.Suppress.Email, w.Suppress.Reason)})
	case w.Erase != nil:
		o.contact = activities.Contact{Profile: customer.Profile{CustomerID: w.Erase.CustomerID}}
		o.rec.add(Entry{At: now, Kind: KindErase, Detail: "personal data erased from the CRM (tombstone kept)"})
	}
}

// mail records an email: its journey time, template and rendered subject,
// and what became of it.
func (o *observer) mail(m inmemory.Mail) {
	// Notices to an owner (handoff, escalation, churn alert) carry the
	// customer they are about; mail to the customer does not.
	kind := KindEmail
	if _, notice := m.Data.Extra[campaign.ExtraCustomerID]; notice {
		kind = KindNotice
	}
	e := Entry{At: m.At, Kind: kind, Template: m.Template, Step: m.Step, To: m.To, Category: string(m.Category),
		Subject: m.Subject, Detail: m.Reason}
	switch m.Status {
	case activities.SendFailed:
		e.Status = StatusFailed
	case activities.SendSuppressed:
		e.Status = StatusSuppressed
	default:
		e.Status = StatusSent
		if c, err := o.reg.Get(m.CampaignID, m.CampaignVersion); err == nil && kind == KindEmail && m.Category == customer.CategoryMarketing {
			e.Due, e.Note = o.timing(c, m)
		}
	}
	o.rec.add(e)
}

// timing explains why a marketing email went out later than its step was
// due, as the journey decided it with the contact policy (it hands the due
// time and the rules that moved the email to the send): quiet hours in the
// customer's zone, the frequency cap, the minimum gap.
func (o *observer) timing(c *campaign.Campaign, m inmemory.Mail) (*time.Time, string) {
	if len(m.Deferral) == 0 || !m.At.After(m.Due.Add(time.Second)) {
		return nil, ""
	}
	loc := time.UTC
	if l, err := campaign.LoadLocation(o.contact.TimeZone); err == nil && o.contact.TimeZone != "" {
		loc = l
	}
	var why []string
	for _, r := range m.Deferral {
		switch r {
		case campaign.ReasonQuietHours:
			if q := c.Sending.QuietHours; q != nil {
				r = fmt.Sprintf("quiet hours %s–%s", q.Start, q.End)
			}
		case campaign.ReasonFrequencyCap:
			if fc := c.Sending.FrequencyCap; fc != nil {
				r = fmt.Sprintf("the frequency cap, at most %d in %s", fc.Max, campaign.FormatDuration(fc.Window.D()))
			}
		case campaign.ReasonMinGap:
			r = fmt.Sprintf("the minimum gap of %s", campaign.FormatDuration(c.Sending.MinGap.D()))
		}
		why = append(why, r)
	}
	due := m.Due.UTC()
	return &due, fmt.Sprintf("held by %s (due %s)", strings.Join(why, " and "), due.In(loc).Format("Mon 15:04"))
}
