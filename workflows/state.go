package workflows

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
)

// Bounds that keep a journey's carried state small however long it lives.
const (
	seenEventsKept = 256 // recent event IDs deduplicated in memory
	timelineKept   = 40  // recent timeline entries shown by the query
)

// JourneyState is everything a journey carries across continue-as-new.
// Every collection in it is bounded.
type JourneyState struct {
	CustomerID string `json:"customer_id"`
	// Journey names this journey instance (from its first run's id): a
	// customer whose journey ended and who signs up again gets a new one,
	// and every idempotency key of the journey (emails, stage changes,
	// handoffs, tasks, scores) carries it, so the second journey sends its
	// own welcome.
	Journey string `json:"journey"`
	// Contact is the customer's profile as the latest signup gave it
	// (empty before the signup and after an erase). States carried from
	// runs before it had the customer id have none: use CustomerID.
	Contact         customer.Profile `json:"contact"`
	HasSignup       bool             `json:"has_signup"`
	CampaignID      string           `json:"campaign_id"`
	CampaignVersion string           `json:"campaign_version"`

	// Epoch is the real time the journey started: the origin of the
	// journey clock when time is scaled.
	Epoch     time.Time `json:"epoch"`
	TimeScale float64   `json:"time_scale"`

	Stage          customer.Stage `json:"stage"`
	StageSeq       int            `json:"stage_seq"`
	StageEnteredAt time.Time      `json:"stage_entered_at"`
	EntryDone      bool           `json:"entry_done"`
	StepIndex      int            `json:"step_index"`

	Fit              int               `json:"fit"`
	FitReasons       []campaign.Reason `json:"fit_reasons,omitempty"`
	Behaviour        int               `json:"behaviour"`
	LastEngagementAt time.Time         `json:"last_engagement_at"`
	// Contributions sums behaviour points per event type since the last
	// reset (the "why" of a handoff). Bounded by the number of event types.
	Contributions map[string]int `json:"contributions,omitempty"`

	HandoffKey string `json:"handoff_key,omitempty"`
	Accepted   bool   `json:"accepted,omitempty"`
	Escalated  bool   `json:"escalated,omitempty"`

	PurchasedWhilePending bool `json:"purchased_while_pending,omitempty"`

	LastActivityAt time.Time `json:"last_activity_at"`
	LastHolidayAt  time.Time `json:"last_holiday_at"`
	AskIndex       int       `json:"ask_index,omitempty"`
	LastAskAt      time.Time `json:"last_ask_at"`
	ChurnAttempts  int       `json:"churn_attempts,omitempty"`

	MailSuppressed   bool   `json:"mail_suppressed,omitempty"`
	SuppressedReason string `json:"suppressed_reason,omitempty"`

	// Tags are the contact's tags (sorted, distinct), as events and the
	// campaign's tag rules set them; the CRM holds the same set.
	Tags []string `json:"tags,omitempty"`

	// RecentSends are the times of recent marketing sends, for the
	// frequency cap; never longer than the cap's max.
	RecentSends []time.Time `json:"recent_sends,omitempty"`
	// SeenEvents is a FIFO of recent event IDs; the CRM event log dedupes
	// beyond it.
	SeenEvents []string        `json:"seen_events,omitempty"`
	Timeline   []TimelineEntry `json:"timeline,omitempty"`

	// ScoreSeq counts the score changes written to the CRM (their keys).
	ScoreSeq int `json:"score_seq,omitempty"`
	// CRM is the journey's backlog of CRM writes (crmqueue.go).
	CRM CRMBacklog `json:"crm"`

	Run int `json:"run"`

	// Advocacy and feedback (release 1.1): an advocate left a review,
	// referred someone or answered the NPS as a promoter; AsksEnded are
	// the asks their advocacy made pointless; a detractor gets no asks; a
	// promoter's answer asks at once (AskNow). NPSScore is the latest
	// answer, NPSAnswers counts them (the detractor tasks' keys).
	Advocate   bool     `json:"advocate,omitempty"`
	Detractor  bool     `json:"detractor,omitempty"`
	AskNow     bool     `json:"ask_now,omitempty"`
	AsksEnded  []string `json:"asks_ended,omitempty"`
	NPSScore   *int     `json:"nps_score,omitempty"`
	NPSAnswers int      `json:"nps_answers,omitempty"`

	// Dates are the reminder dates the CRM sent, by the campaign's date
	// key (campaign.Reminder.DateKey), as sent; RemindersDone the
	// reminders sent or skipped for them ("<reminder id>@<date>"). Both
	// hold only the campaign's date keys: bounded by its reminders.
	Dates         map[string]string `json:"dates,omitempty"`
	RemindersDone []string          `json:"reminders_done,omitempty"`

	// Deferred are marketing emails the send ledger held back under the
	// contact policy (another source, a broadcast, mailed the customer
	// moments before): each is sent again, under its key, when due.
	Deferred []DeferredSend `json:"deferred,omitempty"`
}

// DeferredSend is an email the ledger deferred.
type DeferredSend struct {
	Key      string            `json:"key"`
	StepID   string            `json:"step_id"`
	Template string            `json:"template"`
	Category customer.Category `json:"category"`
	// StageSeq is the stage it belongs to (0: any stage, a reminder).
	StageSeq int       `json:"stage_seq"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
}

// CRMBacklog holds the CRM writes a journey has decided on and the CRM does
// not have yet, in order. It is empty but for the moments a write is in
// flight, unless the database is away: then the writes wait here, carried
// across continue-as-new, and are retried with backoff until they are in.
type CRMBacklog struct {
	Writes []activities.CRMWrite `json:"writes,omitempty"`
	// RetryAt is when the next attempt is due (workflow time, not journey
	// time: it is about a real database); zero when none failed.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Failures counts the attempts that failed since the last success.
	Failures int `json:"failures,omitempty"`
	// Since is when the first of those failed; LastError says why the last
	// one did.
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Deferred counts the writes at the head of Writes that were already
	// counted as deferred in the lifecycle_crm_writes_deferred metric.
	Deferred int `json:"deferred,omitempty"`
}

// clone is a copy of the state that shares nothing it could change: the
// journey applies events to a clone before it knows whether the CRM has
// seen them (handleEvents).
func (s *JourneyState) clone() *JourneyState {
	c := *s
	c.FitReasons = slices.Clone(s.FitReasons)
	c.Contributions = maps.Clone(s.Contributions)
	c.RecentSends = slices.Clone(s.RecentSends)
	c.Tags = slices.Clone(s.Tags)
	c.AsksEnded = slices.Clone(s.AsksEnded)
	c.Dates = maps.Clone(s.Dates)
	c.RemindersDone = slices.Clone(s.RemindersDone)
	c.Deferred = slices.Clone(s.Deferred)
	if s.NPSScore != nil {
		n := *s.NPSScore
		c.NPSScore = &n
	}
	c.SeenEvents = slices.Clone(s.SeenEvents)
	c.Timeline = slices.Clone(s.Timeline)
	c.CRM.Writes = slices.Clone(s.CRM.Writes)
	return &c
}

// key is an idempotency key of this journey instance: the customer, the
// journey and what it is about ("transition/3", "handoff/2"...).
func (s *JourneyState) key(what string, n int) string {
	return fmt.Sprintf("%s/%s/%s/%d", s.CustomerID, s.Journey, what, n)
}

// journeyTime maps an outside (real) timestamp onto the journey clock
// (see the TimeScale of JourneyInput).
func (s *JourneyState) journeyTime(t time.Time) time.Time {
	if s.TimeScale <= 1 || t.IsZero() {
		return t
	}
	return s.Epoch.Add(time.Duration(float64(t.Sub(s.Epoch)) * s.TimeScale))
}

func (s *JourneyState) score() int { return s.Fit + s.Behaviour }

func (s *JourneyState) note(at time.Time, kind, detail string) {
	s.Timeline = append(s.Timeline, TimelineEntry{At: at, Kind: kind, Detail: detail})
	if n := len(s.Timeline) - timelineKept; n > 0 {
		s.Timeline = append([]TimelineEntry(nil), s.Timeline[n:]...)
	}
}

// seen reports whether the event ID was seen recently, and remembers it.
func (s *JourneyState) seen(id string, index map[string]bool) bool {
	if index[id] {
		return true
	}
	index[id] = true
	s.SeenEvents = append(s.SeenEvents, id)
	if n := len(s.SeenEvents) - seenEventsKept; n > 0 {
		for _, old := range s.SeenEvents[:n] {
			delete(index, old)
		}
		s.SeenEvents = append([]string(nil), s.SeenEvents[n:]...)
	}
	return false
}

// topReasons lists the largest contributions, largest first, ties by name,
// so the order never depends on map iteration.
func (s *JourneyState) topReasons(n int) []campaign.Reason {
	out := make([]campaign.Reason, 0, len(s.Contributions)+len(s.FitReasons))
	for src, pts := range s.Contributions {
		if pts > 0 {
			out = append(out, campaign.Reason{Source: src, Points: pts})
		}
	}
	for _, r := range s.FitReasons {
		if r.Points > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Points != out[j].Points {
			return out[i].Points > out[j].Points
		}
		return out[i].Source < out[j].Source
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// decay materialises behaviour decay up to now: Points removed for every
// full Every without engagement.
func (s *JourneyState) decay(d campaign.Decay, now time.Time) bool {
	every := d.Every.D()
	if d.Points <= 0 || every <= 0 || s.Behaviour <= 0 || s.LastEngagementAt.IsZero() {
		return false
	}
	periods := int(now.Sub(s.LastEngagementAt) / every)
	if periods <= 0 {
		return false
	}
	s.Behaviour = max(0, s.Behaviour-periods*d.Points)
	s.LastEngagementAt = s.LastEngagementAt.Add(time.Duration(periods) * every)
	return true
}

// nextDecayAt is when decay next removes points, or zero when it will not.
func (s *JourneyState) nextDecayAt(d campaign.Decay) time.Time {
	if d.Points <= 0 || d.Every.D() <= 0 || s.Behaviour <= 0 || s.LastEngagementAt.IsZero() {
		return time.Time{}
	}
	return s.LastEngagementAt.Add(d.Every.D())
}

// recordSend remembers a marketing send for the frequency cap.
func (s *JourneyState) recordSend(at time.Time, capMax int) {
	s.RecentSends = append(s.RecentSends, at)
	keep := max(capMax, 1)
	if n := len(s.RecentSends) - keep; n > 0 {
		s.RecentSends = append([]time.Time(nil), s.RecentSends[n:]...)
	}
}
