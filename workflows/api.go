package workflows

import (
	"errors"
	"time"

	"github.com/acme/lifecycle/customer"
)

// Names callers use to talk to a journey (HTTP API, starter, CRM systems
// using the Temporal client directly).
const (
	// WorkflowName is the registered name of the journey workflow.
	WorkflowName = "CustomerJourney"
	// SignalSignup carries a Signup; the first one starts the trial.
	SignalSignup = "signup"
	// SignalEvent carries an Event (or a JSON array of events).
	SignalEvent = "event"
	// QueryState returns a JourneyView.
	QueryState = "state"
	// UpdateEvent applies one Event and answers with the JourneyView after
	// it, for callers that need the outcome (new score, stage).
	UpdateEvent = "apply-event"
)

// JourneyID is the workflow ID of a customer's journey: one per customer, so
// a second signup or an early event finds the same workflow
// (signal-with-start).
func JourneyID(customerID string) string { return "journey/" + customerID }

// ValidateCustomerID says why an id cannot name a journey
// (customer.CheckCustomerID).
func ValidateCustomerID(id string) error {
	return customer.CheckCustomerID("customer_id", id)
}

// Signup is a trial signup: who the customer is (a customer.Profile) and
// when they signed up. It is the signal's payload and the API's request
// body. The profile's fields are its own rather than embedded, so callers
// write Signup{CustomerID: ..., Email: ...}; TestSignupHoldsTheProfile keeps
// them the same as customer.Profile's, JSON names included.
type Signup struct {
	CustomerID  string    `json:"customer_id"`
	Email       string    `json:"email"`
	FirstName   string    `json:"first_name,omitempty"`
	LastName    string    `json:"last_name,omitempty"`
	Company     string    `json:"company,omitempty"`
	Role        string    `json:"role,omitempty"`
	CompanySize int       `json:"company_size,omitempty"`
	TimeZone    string    `json:"time_zone,omitempty"`
	LeadSource  string    `json:"lead_source,omitempty"`
	OwnerEmail  string    `json:"owner_email,omitempty"`
	At          time.Time `json:"at,omitempty"`
}

// SignupOf is the signup of the customer p at the time at.
func SignupOf(p customer.Profile, at time.Time) Signup {
	return Signup{
		CustomerID: p.CustomerID, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName,
		Company: p.Company, Role: p.Role, CompanySize: p.CompanySize, TimeZone: p.TimeZone,
		LeadSource: p.LeadSource, OwnerEmail: p.OwnerEmail, At: at,
	}
}

// Profile is who signed up.
func (s Signup) Profile() customer.Profile {
	return customer.Profile{
		CustomerID: s.CustomerID, Email: s.Email, FirstName: s.FirstName, LastName: s.LastName,
		Company: s.Company, Role: s.Role, CompanySize: s.CompanySize, TimeZone: s.TimeZone,
		LeadSource: s.LeadSource, OwnerEmail: s.OwnerEmail,
	}
}

// Validate returns one *customer.FieldError per bad field (errors.Join),
// named by its JSON name. The journey checks signals with it too, so what
// the API accepts is what the journey accepts.
func (s Signup) Validate() error { return s.Profile().Validate() }

// Event is something that happened to a customer, pushed by a CRM or the
// product. ID deduplicates: the same ID twice counts once.
type Event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	At         time.Time      `json:"at,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Validate returns one *customer.FieldError per bad field (errors.Join):
// id, type, properties. Unknown types are valid here: the journey records
// and ignores them, so a CRM sending a new type loses nothing.
func (e Event) Validate() error {
	return errors.Join(
		customer.CheckEventID("id", e.ID),
		customer.CheckEventType("type", e.Type),
		customer.CheckProperties("properties", e.Properties),
		customer.CheckTagProperties("properties", e.Properties),
	)
}

// JourneyInput starts (or continues) a journey.
type JourneyInput struct {
	CustomerID string `json:"customer_id"`
	CampaignID string `json:"campaign_id"`
	// CampaignVersion pins a version; empty takes the latest at start.
	CampaignVersion string `json:"campaign_version,omitempty"`
	// TimeScale compresses journey time (demo, preview); 0 or 1 is real time.
	TimeScale float64 `json:"time_scale,omitempty"`
	// MaxHistoryEvents makes a run continue-as-new once its history is that
	// long; 0 takes the default.
	MaxHistoryEvents int `json:"max_history_events,omitempty"`
	// State is set by continue-as-new.
	State *JourneyState `json:"state,omitempty"`
	// UpgradeCampaign is set when a run continues at a stage boundary: the
	// safe point at which a journey moves to the newest campaign version.
	UpgradeCampaign bool `json:"upgrade_campaign,omitempty"`
}

// JourneyResult is what a finished journey returns.
type JourneyResult struct {
	CustomerID string         `json:"customer_id"`
	Stage      customer.Stage `json:"stage"`
	Reason     string         `json:"reason"`
}

// JourneyView answers QueryState: why the journey is where it is and what it
// will do next.
type JourneyView struct {
	CustomerID string `json:"customer_id"`
	// Journey names the customer's journey instance: the part of every
	// idempotency key (CRM rows, the send ledger) after the customer id.
	Journey         string         `json:"journey"`
	CampaignID      string         `json:"campaign_id"`
	CampaignVersion string         `json:"campaign_version"`
	Stage           customer.Stage `json:"stage"`
	StageEnteredAt  time.Time      `json:"stage_entered_at"`
	Score           int            `json:"score"`
	FitScore        int            `json:"fit_score"`
	BehaviourScore  int            `json:"behaviour_score"`
	Threshold       int            `json:"threshold"`
	TopReasons      []ScoreReason  `json:"top_reasons,omitempty"`
	NextStep        string         `json:"next_step,omitempty"`
	NextAt          time.Time      `json:"next_at,omitempty"`
	MailSuppressed  bool           `json:"mail_suppressed,omitempty"`
	// Tags are the contact's tags.
	Tags []string `json:"tags,omitempty"`
	// Advocate, Detractor and NPSScore are what the customer said
	// (advocacy and feedback); AsksEnded the asks their advocacy ended.
	Advocate  bool     `json:"advocate,omitempty"`
	Detractor bool     `json:"detractor,omitempty"`
	NPSScore  *int     `json:"nps_score,omitempty"`
	AsksEnded []string `json:"asks_ended,omitempty"`
	// Dates are the reminder dates the CRM sent, by date key.
	Dates map[string]string `json:"dates,omitempty"`
	// Deferred counts the emails the send ledger holds under the contact
	// policy.
	Deferred int `json:"deferred,omitempty"`
	// Sending is the email in flight, if any.
	Sending string `json:"sending,omitempty"`
	// CRMBacklog counts the CRM writes the CRM does not have yet; with
	// CRMRetryAt and CRMError while the database is away.
	CRMBacklog int       `json:"crm_backlog,omitempty"`
	CRMRetryAt time.Time `json:"crm_retry_at,omitzero"`
	CRMError   string    `json:"crm_error,omitempty"`
	// WaitingFor says what keeps the journey from going on (a campaign
	// version no worker has yet).
	WaitingFor string          `json:"waiting_for,omitempty"`
	JourneyNow time.Time       `json:"journey_now"`
	Run        int             `json:"run"`
	Timeline   []TimelineEntry `json:"timeline"`
}

// ScoreReason is one contribution to a lead score.
type ScoreReason struct {
	Source string `json:"source"`
	Points int    `json:"points"`
}

// TimelineEntry is one line of a journey's recent history, in journey time.
type TimelineEntry struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}
