// Package campaign holds lifecycle campaign definitions: what marketers edit
// (one YAML file per campaign version), how such a file is validated, and the
// pure, deterministic functions the journey workflow uses to turn a
// definition into decisions — scores, send times in the customer's zone,
// quiet hours, holidays, the frequency cap.
//
// Everything here is safe to call from workflow code: no I/O, no clock, no
// randomness. Loading files happens in the activity side (Registry).
package campaign

import (
	"sync"
	"time"

	"github.com/acme/lifecycle/customer"
)

// Campaign is one version of a lifecycle campaign.
type Campaign struct {
	// ID names the campaign across versions, e.g. "saas-lifecycle".
	ID string `yaml:"id" json:"id"`
	// Version is this definition's version, e.g. "2026-11-01" or "v3".
	// Journeys record the version they run on.
	Version     string `yaml:"version" json:"version"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Product is the product name templates can use as {{.Product}}.
	Product string `yaml:"product" json:"product"`
	// DefaultTimeZone is used when a contact has none (IANA name).
	DefaultTimeZone string `yaml:"default_time_zone" json:"default_time_zone"`

	Sending    Sending    `yaml:"sending" json:"sending"`
	Scoring    Scoring    `yaml:"scoring" json:"scoring"`
	Trial      Trial      `yaml:"trial" json:"trial"`
	Nurture    Nurture    `yaml:"nurture" json:"nurture"`
	Sales      Sales      `yaml:"sales" json:"sales"`
	Onboarding Onboarding `yaml:"onboarding" json:"onboarding"`
	Active     Active     `yaml:"active" json:"active"`
	AtRisk     AtRisk     `yaml:"at_risk" json:"at_risk"`
	Churned    Churned    `yaml:"churned" json:"churned"`

	// Advocacy says what feedback and advocacy events do: who becomes an
	// advocate, which asks end, what a detractor's answer opens.
	Advocacy Advocacy `yaml:"advocacy,omitempty" json:"advocacy,omitempty"`

	// Reminders are emails timed relative to a date the CRM sends (a
	// renewal date, a webinar's start).
	Reminders []Reminder `yaml:"reminders,omitempty" json:"reminders,omitempty"`

	// Tags are the campaign's tag rules: an event of a type adds tags to
	// the contact (e.g. webinar_attended -> webinar-2026).
	Tags []TagRule `yaml:"tags,omitempty" json:"tags,omitempty"`

	// Targets are the funnel's stage targets (conversion, time in stage)
	// that the funnel report measures each period against.
	Targets []Target `yaml:"targets,omitempty" json:"targets,omitempty"`

	// Templates by id; steps refer to them.
	Templates map[string]Template `yaml:"templates" json:"templates"`

	// Source is the file the definition was loaded from (for error messages
	// and the UI); not part of the YAML.
	Source string `yaml:"-" json:"source,omitempty"`

	// renderers caches parsed templates by id (see Renderer).
	renderers sync.Map
}

// Sending is the campaign's contact policy: the per-customer rules for
// marketing mail, whichever part of the product sends it (a journey's
// sequence, a holiday greeting, a reminder, a broadcast). Transactional
// mail (owner notices, receipts) is exempt. Policy.Schedule applies it.
type Sending struct {
	// QuietHours, in the recipient's local time, during which marketing mail
	// is not sent; a send that falls inside moves to the window's end.
	QuietHours *QuietHours `yaml:"quiet_hours,omitempty" json:"quiet_hours,omitempty"`
	// FrequencyCap limits marketing mail per customer.
	FrequencyCap *FrequencyCap `yaml:"frequency_cap,omitempty" json:"frequency_cap,omitempty"`
	// MinGap is the least time between any two marketing emails to one
	// customer (0: none), so a broadcast and a nurture email do not land
	// minutes apart.
	MinGap Duration `yaml:"min_gap,omitempty" json:"min_gap,omitempty"`
}

// QuietHours is a daily local-time window, e.g. start "21:00", end "08:00"
// (it may wrap midnight).
type QuietHours struct {
	Start ClockTime `yaml:"start" json:"start"`
	End   ClockTime `yaml:"end" json:"end"`
}

// ClockTime is a local wall-clock time of day, written "HH:MM".
type ClockTime struct {
	Hour, Minute int
}

// FrequencyCap allows at most Max marketing emails in any Window.
type FrequencyCap struct {
	Max    int      `yaml:"max" json:"max"`
	Window Duration `yaml:"window" json:"window"`
	// OverCap is "delay" (send when the cap allows) or "drop" (skip the step).
	OverCap string `yaml:"over_cap" json:"over_cap"`
}

// Duration is a time.Duration written like "90m", "36h", "3d" or "2w" in
// YAML (days and weeks are 24h and 168h: journey offsets count calendar-free
// elapsed time; local-calendar rules are quiet hours and holidays).
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Scoring turns events and profile into a lead score.
type Scoring struct {
	// Threshold at or above which a lead is handed to sales.
	Threshold int `yaml:"threshold" json:"threshold"`
	// SourcePoints are the starting (fit) points per lead-source trust level
	// (customer.LeadSources).
	SourcePoints map[string]int `yaml:"source_points" json:"source_points"`
	// EventPoints are behaviour points per event type.
	EventPoints map[string]int `yaml:"event_points" json:"event_points"`
	// Fit adds points for the profile.
	Fit Fit `yaml:"fit" json:"fit"`
	// Decay removes behaviour points without engagement.
	Decay Decay `yaml:"decay" json:"decay"`
}

// Fit scores the profile: company size bands and roles.
type Fit struct {
	// CompanySize bands; the first band whose Min the size reaches counts.
	CompanySize []SizeBand `yaml:"company_size" json:"company_size"`
	// Roles maps a normalised role (lower case) to points.
	Roles map[string]int `yaml:"roles" json:"roles"`
}

// SizeBand gives Points to companies with at least Min employees.
type SizeBand struct {
	Min    int `yaml:"min" json:"min"`
	Points int `yaml:"points" json:"points"`
}

// Decay removes Points behaviour points for every Every without engagement;
// behaviour points never go below zero.
type Decay struct {
	Points int      `yaml:"points" json:"points"`
	Every  Duration `yaml:"every" json:"every"`
}

// Step is one email of a sequence, sent Offset after the stage was entered.
type Step struct {
	ID       string   `yaml:"id" json:"id"`
	Offset   Duration `yaml:"offset" json:"offset"`
	Template string   `yaml:"template" json:"template"`
	// Variants picks a template by content band (nurture only): the band the
	// lead's score is in at send time, e.g. awareness/consideration/decision.
	Variants map[string]string `yaml:"variants,omitempty" json:"variants,omitempty"`
}

// Trial is the first stage after signup.
type Trial struct {
	Steps []Step `yaml:"steps" json:"steps"`
	// Length after which the journey moves on to nurture.
	Length Duration `yaml:"length" json:"length"`
}

// Nurture is the drip sequence for leads that are not ready for sales.
type Nurture struct {
	Steps []Step `yaml:"steps" json:"steps"`
	// Bands choose content that fits the buyer's stage by score.
	Bands []Band `yaml:"bands" json:"bands"`
}

// Band names a content band for scores at or above MinScore.
type Band struct {
	Name     string `yaml:"name" json:"name"`
	MinScore int    `yaml:"min_score" json:"min_score"`
}

// Sales is the handoff to a salesperson.
type Sales struct {
	// OwnerEmail is notified of a handoff when the contact has no owner.
	OwnerEmail string `yaml:"owner_email" json:"owner_email"`
	// NotifyTemplate is the (transactional) email to the owner.
	NotifyTemplate string `yaml:"notify_template" json:"notify_template"`
	// SLA: a handoff not accepted within it is escalated.
	SLA Duration `yaml:"sla" json:"sla"`
	// EscalationEmail receives escalations.
	EscalationEmail    string `yaml:"escalation_email" json:"escalation_email"`
	EscalationTemplate string `yaml:"escalation_template" json:"escalation_template"`
	// TopReasons is how many top contributing event types travel with the
	// handoff.
	TopReasons int `yaml:"top_reasons" json:"top_reasons"`
}

// Onboarding follows a purchase.
type Onboarding struct {
	Steps []Step `yaml:"steps" json:"steps"`
	// DeliveryOwnerEmail is recorded in the CRM as the delivery owner.
	DeliveryOwnerEmail string `yaml:"delivery_owner_email" json:"delivery_owner_email"`
	// Length after which the customer is active.
	Length Duration `yaml:"length" json:"length"`
}

// Active is the long customer life.
type Active struct {
	// InactivityWindow without an activity event moves the customer to
	// at_risk.
	InactivityWindow Duration `yaml:"inactivity_window" json:"inactivity_window"`
	// ActivityEvents are the event types that count as activity.
	ActivityEvents []string `yaml:"activity_events" json:"activity_events"`
	// Holidays are greetings on the customer's local calendar.
	Holidays []Holiday `yaml:"holidays" json:"holidays"`
	// Asks are periodic feedback / advocacy emails (review, referral code),
	// sent in turn every AskEvery.
	AskEvery Duration `yaml:"ask_every" json:"ask_every"`
	Asks     []string `yaml:"asks" json:"asks"`
}

// Holiday is a greeting whose send time is a robfig/cron expression
// (standard 5 fields) evaluated in the customer's time zone.
type Holiday struct {
	ID       string `yaml:"id" json:"id"`
	Cron     string `yaml:"cron" json:"cron"`
	Template string `yaml:"template" json:"template"`
}

// AtRisk is the churn warning and win-back.
type AtRisk struct {
	// TaskTitle is the CRM task for the account owner.
	TaskTitle string `yaml:"task_title" json:"task_title"`
	// TaskDue is how long the owner has for the task.
	TaskDue Duration `yaml:"task_due" json:"task_due"`
	// AlertTemplate is the (transactional) alert to the owner.
	AlertTemplate string `yaml:"alert_template" json:"alert_template"`
	// WinBack is the win-back sequence.
	WinBack []Step `yaml:"win_back" json:"win_back"`
	// ChurnAfter, counted from entering at_risk, ends it as churned.
	ChurnAfter Duration `yaml:"churn_after" json:"churn_after"`
}

// Churned decides what happens after churn.
type Churned struct {
	// Mode is "periodic" (low-frequency win-back attempts) or "end" (the
	// journey ends).
	Mode        string   `yaml:"mode" json:"mode"`
	Every       Duration `yaml:"every" json:"every"`
	MaxAttempts int      `yaml:"max_attempts" json:"max_attempts"`
	Template    string   `yaml:"template" json:"template"`
}

// Template is an email. Subject and Text are text/template, HTML is
// html/template; they see TemplateData.
type Template struct {
	Subject  string            `yaml:"subject" json:"subject"`
	Text     string            `yaml:"text" json:"text"`
	HTML     string            `yaml:"html" json:"html"`
	Category customer.Category `yaml:"category,omitempty" json:"category,omitempty"`
}

// TemplateData is what a template can use.
type TemplateData struct {
	FirstName      string
	LastName       string
	Email          string
	Company        string
	Product        string
	Stage          string
	Score          int
	UnsubscribeURL string
	// Extra carries step-specific values (e.g. Reasons for a handoff notice,
	// ReferralCode, CustomerID for owner alerts).
	Extra map[string]string
}
