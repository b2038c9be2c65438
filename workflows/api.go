package workflows

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/acme/lifecycle/campaign"
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

var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// ValidateCustomerID says why an id cannot name a journey.
func ValidateCustomerID(id string) error {
	if !customerIDPattern.MatchString(id) {
		return fmt.Errorf("customer_id %q: must be 1-128 characters of letters, digits and . _ : @ -", id)
	}
	return nil
}

// Signup is a trial signup: who the customer is.
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

// Validate names the first bad field.
func (s Signup) Validate() error {
	var errs []error
	if err := ValidateCustomerID(s.CustomerID); err != nil {
		errs = append(errs, err)
	}
	if !bareAddress(s.Email) {
		errs = append(errs, fmt.Errorf("email %q: must be a bare email address (name@domain)", s.Email))
	}
	if s.OwnerEmail != "" && !bareAddress(s.OwnerEmail) {
		errs = append(errs, fmt.Errorf("owner_email %q: must be a bare email address (name@domain)", s.OwnerEmail))
	}
	for _, f := range [][2]string{{"first_name", s.FirstName}, {"last_name", s.LastName}, {"company", s.Company}, {"role", s.Role}} {
		if strings.ContainsAny(f[1], "\r\n") {
			errs = append(errs, fmt.Errorf("%s: must not contain line breaks", f[0]))
		}
	}
	if s.TimeZone != "" {
		if _, err := campaign.LoadLocation(s.TimeZone); err != nil {
			errs = append(errs, fmt.Errorf("time_zone %q: unknown IANA time zone", s.TimeZone))
		}
	}
	if s.LeadSource != "" && !validLeadSource(s.LeadSource) {
		errs = append(errs, fmt.Errorf("lead_source %q: must be one of %s", s.LeadSource, strings.Join(LeadSources, ", ")))
	}
	if s.CompanySize < 0 {
		errs = append(errs, fmt.Errorf("company_size %d: must not be negative", s.CompanySize))
	}
	return errors.Join(errs...)
}

// bareAddress accepts "name@domain" and nothing else: no display name, no
// angle brackets, no line breaks (the CRM and the mailer require as much).
func bareAddress(v string) bool {
	a, err := mail.ParseAddress(v)
	return err == nil && a.Name == "" && a.Address == v
}

// LeadSources are the trust levels of where a lead came from, most trusted
// first.
var LeadSources = []string{"current_customer", "referral", "connected", "expert", "search_ads", "cold"}

func validLeadSource(s string) bool { return slices.Contains(LeadSources, s) }

// Event is something that happened to a customer, pushed by a CRM or the
// product. ID deduplicates: the same ID twice counts once.
type Event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	At         time.Time      `json:"at,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Validate names the bad field. Unknown types are valid here: the journey
// records and ignores them, so a CRM sending a new type loses nothing.
func (e Event) Validate() error {
	if strings.TrimSpace(e.ID) == "" {
		return errors.New("id: must not be empty")
	}
	if len(e.ID) > 200 {
		return fmt.Errorf("id: at most 200 characters (got %d)", len(e.ID))
	}
	if strings.TrimSpace(e.Type) == "" {
		return errors.New("type: must not be empty")
	}
	return nil
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
	Stage      campaign.Stage `json:"stage"`
	Reason     string         `json:"reason"`
}

// JourneyView answers QueryState: why the journey is where it is and what it
// will do next.
type JourneyView struct {
	CustomerID      string          `json:"customer_id"`
	CampaignID      string          `json:"campaign_id"`
	CampaignVersion string          `json:"campaign_version"`
	Stage           campaign.Stage  `json:"stage"`
	StageEnteredAt  time.Time       `json:"stage_entered_at"`
	Score           int             `json:"score"`
	FitScore        int             `json:"fit_score"`
	BehaviourScore  int             `json:"behaviour_score"`
	Threshold       int             `json:"threshold"`
	TopReasons      []ScoreReason   `json:"top_reasons,omitempty"`
	NextStep        string          `json:"next_step,omitempty"`
	NextAt          time.Time       `json:"next_at,omitempty"`
	MailSuppressed  bool            `json:"mail_suppressed,omitempty"`
	JourneyNow      time.Time       `json:"journey_now"`
	Run             int             `json:"run"`
	Timeline        []TimelineEntry `json:"timeline"`
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
