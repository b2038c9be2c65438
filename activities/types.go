package activities

import (
	"time"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

// LoadCampaignInput names a campaign version; Latest takes the newest.
type LoadCampaignInput struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"`
	Latest  bool   `json:"latest,omitempty"`
}

// Contact is what a journey writes to the CRM about its customer: the
// customer.Profile (embedded: the same fields under the same JSON names)
// and what the journey adds to it. It is carried in journey histories, so
// its JSON names never change.
type Contact struct {
	customer.Profile
	DeliveryOwnerEmail string `json:"delivery_owner_email,omitempty"`
	CampaignID         string `json:"campaign_id,omitempty"`
	CampaignVersion    string `json:"campaign_version,omitempty"`
}

// FitScore is the profile part of a lead score.
type FitScore struct {
	Points  int               `json:"points"`
	Reasons []campaign.Reason `json:"reasons,omitempty"`
}

// EventRecord is an event as the CRM event log keeps it.
type EventRecord struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	At            time.Time      `json:"at"`
	Properties    map[string]any `json:"properties,omitempty"`
	IgnoredReason string         `json:"ignored_reason,omitempty"`
}

// RecordEventsInput is a batch of a customer's events and, when it changed,
// the score after them.
type RecordEventsInput struct {
	CustomerID string        `json:"customer_id"`
	Events     []EventRecord `json:"events"`
	// Key identifies the call (the journey run and its batch number): a
	// retry with the same key is told the same ids are new, so events are
	// never dropped as "already recorded" by their own earlier attempt.
	Key string `json:"key,omitempty"`
	// StopUnlessAllNew stops the batch of writes this one is in when not
	// every event is new: the journey computed the writes after it on the
	// assumption that they were, and computes them again (WriteCRMResult).
	StopUnlessAllNew bool `json:"stop_unless_all_new,omitempty"`
}

// RecordEventsResult lists the event IDs the CRM had not seen before: the
// CRM's event log is the dedupe ledger that outlives the journey's bounded
// in-memory window.
type RecordEventsResult struct {
	New []string `json:"new"`
}

// ScoreInput records a score in the CRM's score history.
type ScoreInput struct {
	Key        string    `json:"key"`
	CustomerID string    `json:"customer_id"`
	Score      int       `json:"score"`
	Behaviour  int       `json:"behaviour"`
	Fit        int       `json:"fit"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// TransitionInput records a stage change.
type TransitionInput struct {
	Key             string         `json:"key"`
	CustomerID      string         `json:"customer_id"`
	From            customer.Stage `json:"from"`
	To              customer.Stage `json:"to"`
	Reason          string         `json:"reason"`
	At              time.Time      `json:"at"`
	CampaignID      string         `json:"campaign_id"`
	CampaignVersion string         `json:"campaign_version"`
	// Journey names the journey instance and StageSeq counts its stage
	// changes (this one included): the send ledger cancels a marketing
	// email planned in an earlier stage (crm.SendClaim).
	Journey  string `json:"journey,omitempty"`
	StageSeq int    `json:"stage_seq,omitempty"`
}

// SendEmailInput is one email of a journey step. Key is the idempotency key:
// one email per key, ever.
type SendEmailInput struct {
	Key             string                `json:"key"`
	CustomerID      string                `json:"customer_id"`
	To              string                `json:"to"`
	ToName          string                `json:"to_name,omitempty"`
	CampaignID      string                `json:"campaign_id"`
	CampaignVersion string                `json:"campaign_version"`
	Template        string                `json:"template"`
	Step            string                `json:"step"`
	Data            campaign.TemplateData `json:"data"`
	// Journey and StageSeq say where the email was planned (see
	// TransitionInput): the ledger's claim cancels a marketing email whose
	// stage the customer has left.
	Journey  string `json:"journey,omitempty"`
	StageSeq int    `json:"stage_seq,omitempty"`
	// Policy, for marketing mail, is checked by the send ledger when the
	// key is new, over every marketing email the customer got from any
	// source (broadcasts included): SendDeferred when it does not allow
	// the email now. Nil: no check; ignored for transactional mail.
	Policy *ContactPolicy `json:"policy,omitempty"`
	// Due and Deferral say, for the record (simulate, logs), when the
	// journey's step was due and which rules of the contact policy moved
	// it (campaign.Reason*); empty when it goes out as due.
	Due      time.Time `json:"due,omitzero"`
	Deferral []string  `json:"deferral,omitempty"`
}

// ContactPolicy is the contact policy for the ledger's check, in real time (a time-scaled journey divides its durations by its scale).
type ContactPolicy struct {
	MinGap    time.Duration `json:"min_gap,omitempty"`
	CapMax    int           `json:"cap_max,omitempty"`
	CapWindow time.Duration `json:"cap_window,omitempty"`
}

// Ledger is the policy as the send ledger takes it (nil for nil).
func (p *ContactPolicy) Ledger() *crm.ContactPolicy {
	if p == nil {
		return nil
	}
	return &crm.ContactPolicy{MinGap: p.MinGap, CapMax: p.CapMax, CapWindow: p.CapWindow}
}

// Send outcomes.
const (
	SendSent       = "sent"       // accepted by SMTP now
	SendDuplicate  = "duplicate"  // an earlier attempt already sent it
	SendSuppressed = "suppressed" // unsubscribed, bounced or erased
	SendFailed     = "failed"     // permanently refused; recorded, not retried
	SendBounced    = "bounced"    // the server refused the recipient: a hard bounce, now suppressed
	SendCancelled  = "cancelled"  // planned in a stage the customer has left
	SendDeferred   = "deferred"   // the contact policy does not allow it yet; nothing sent or recorded
)

// SendEmailResult says what happened to a send.
type SendEmailResult struct {
	Status    string `json:"status"`
	MessageID string `json:"message_id,omitempty"`
	// Reason says why it was not sent; for SendDeferred the rule,
	// campaign.ReasonMinGap or campaign.ReasonFrequencyCap.
	Reason string `json:"reason,omitempty"`
	// DeferredUntil, for SendDeferred, is the earliest time the policy
	// allows the email: send it then under the same key. (omitzero: a
	// time.Time is never "empty" to omitempty.)
	DeferredUntil time.Time `json:"deferred_until,omitzero"`
}

// HandoffInput hands a lead to sales.
type HandoffInput struct {
	Key        string            `json:"key"`
	CustomerID string            `json:"customer_id"`
	Score      int               `json:"score"`
	Reasons    []campaign.Reason `json:"reasons"`
	OwnerEmail string            `json:"owner_email"`
	SLADue     time.Time         `json:"sla_due"`
}

// HandoffStatusInput moves a handoff along (customer.HandoffStatuses).
type HandoffStatusInput struct {
	Key    string `json:"key"`
	Status string `json:"status"`
}

// TaskInput is a CRM task for an account owner.
type TaskInput struct {
	Key        string    `json:"key"`
	CustomerID string    `json:"customer_id"`
	OwnerEmail string    `json:"owner_email"`
	Kind       string    `json:"kind"`
	Title      string    `json:"title"`
	DueAt      time.Time `json:"due_at"`
}

// SuppressInput stops mail to an address; Reason is one of
// customer.SuppressionReasons.
type SuppressInput struct {
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
	Reason     string `json:"reason"`
}

// TagsInput changes a contact's tags: Add, then Remove (a set: adding a
// tag it has, or removing one it has not, changes nothing).
type TagsInput struct {
	CustomerID string   `json:"customer_id"`
	Add        []string `json:"add,omitempty"`
	Remove     []string `json:"remove,omitempty"`
}

// EraseInput deletes a customer's personal data.
type EraseInput struct {
	CustomerID string `json:"customer_id"`
}
