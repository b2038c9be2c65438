package customer

import (
	"slices"
	"sort"
)

// The journey's vocabulary: the words that cross package boundaries. The
// journey writes them, the CRM stores them (its CHECK constraints allow
// exactly these; crm's TestSchemaAllowsTheVocabulary compares the two),
// the API documents them and simulate shows them. Each is defined here and
// nowhere else. The lists are exported for callers to show or iterate;
// the checks use private copies, so a caller that modifies a list cannot
// change what is valid.

// Stage is a step of the customer journey; its value is what the
// JourneyStage search attribute, contacts.stage and stage_transitions hold.
type Stage string

// The stages of the journey and its two exits.
const (
	StagePending      Stage = "pending" // events arrived before the signup
	StageTrial        Stage = "trial"
	StageNurture      Stage = "nurture"
	StageSales        Stage = "sales"
	StageOnboarding   Stage = "onboarding"
	StageActive       Stage = "active"
	StageAtRisk       Stage = "at_risk"
	StageChurned      Stage = "churned"
	StageUnsubscribed Stage = "unsubscribed"
	StageErased       Stage = "erased"
)

// Stages lists the stages in journey order, the two exits last. Treat it
// as read-only.
var Stages = stages()

var validStages = stages()

func stages() []Stage {
	return []Stage{StagePending, StageTrial, StageNurture, StageSales, StageOnboarding,
		StageActive, StageAtRisk, StageChurned, StageUnsubscribed, StageErased}
}

// StageNames returns Stages as strings, as text columns, enums and flags
// hold them; each call returns a new slice.
func StageNames() []string {
	names := make([]string, len(validStages))
	for i, s := range validStages {
		names[i] = string(s)
	}
	return names
}

// Valid reports whether s is one of Stages.
func (s Stage) Valid() bool { return slices.Contains(validStages, s) }

// Lead sources: where a lead came from, most trusted first (the trust
// levels that Scoring.SourcePoints of a campaign give points to).
const (
	LeadCurrentCustomer = "current_customer"
	LeadReferral        = "referral"
	LeadConnected       = "connected"
	LeadExpert          = "expert"
	LeadSearchAds       = "search_ads"
	LeadCold            = "cold"
)

// LeadSources lists the valid lead sources, most trusted first. Treat it
// as read-only; CheckLeadSource does not depend on it.
var LeadSources = leadSources()

var validLeadSources = leadSources()

func leadSources() []string {
	return []string{LeadCurrentCustomer, LeadReferral, LeadConnected, LeadExpert, LeadSearchAds, LeadCold}
}

// IsLeadSource reports whether s is one of LeadSources ("" is not).
func IsLeadSource(s string) bool { return slices.Contains(validLeadSources, s) }

// Event types the journey understands. CRM and product systems send these;
// scoring, activity and the stage machine refer to them by name. Other
// types are valid (CheckEventType): the journey records and ignores them.
const (
	EventTrialSignup       = "trial_signup"
	EventEmailOpened       = "email_opened"
	EventEmailClicked      = "email_clicked"
	EventContentDownloaded = "content_downloaded"
	EventWebinarAttended   = "webinar_attended"
	EventPricingViewed     = "pricing_viewed"
	EventDemoRequested     = "demo_requested"
	EventTrialActivated    = "trial_activated"
	EventSalesAccepted     = "sales_accepted"
	EventSalesRejected     = "sales_rejected"
	EventDealWon           = "deal_won"
	EventDealLost          = "deal_lost"
	EventPurchase          = "purchase"
	EventLogin             = "login"
	EventFeatureUsed       = "feature_used"
	EventSupportTicket     = "support_ticket"
	EventNPSAnswered       = "nps_answered"
	EventReviewLeft        = "review_left"
	EventReferralMade      = "referral_made"
	EventUnsubscribe       = "unsubscribe"
	EventEmailBounced      = "email_bounced"
	EventEmailComplained   = "email_complained"
	EventErase             = "erase"
	// EventTagsChanged carries tags to add and remove (properties "tags"
	// and "remove_tags") and nothing else: POST /v1/customers/{id}/tags.
	EventTagsChanged = "tags_changed"
	// EventProfileUpdated carries profile fields the CRM keeps beyond the
	// signup's, such as a renewal_date that reminders follow.
	EventProfileUpdated = "profile_updated"
)

// Event properties with a meaning of their own on any event type.
const (
	// PropertyTags lists tags the event adds to the contact.
	PropertyTags = "tags"
	// PropertyRemoveTags lists tags the event removes.
	PropertyRemoveTags = "remove_tags"
)

// KnownEventTypes lists every event type the journey understands, sorted.
// Treat it as read-only; IsKnownEvent does not depend on it.
var KnownEventTypes = knownEventTypes()

var knownEvents = knownEventTypes()

func knownEventTypes() []string {
	t := []string{
		EventTrialSignup, EventEmailOpened, EventEmailClicked, EventContentDownloaded,
		EventWebinarAttended, EventPricingViewed, EventDemoRequested, EventTrialActivated,
		EventSalesAccepted, EventSalesRejected, EventDealWon, EventDealLost, EventPurchase,
		EventLogin, EventFeatureUsed, EventSupportTicket, EventNPSAnswered, EventReviewLeft,
		EventReferralMade, EventUnsubscribe, EventEmailBounced, EventEmailComplained, EventErase,
		EventTagsChanged, EventProfileUpdated,
	}
	sort.Strings(t)
	return t
}

// IsKnownEvent reports whether t is one of KnownEventTypes.
func IsKnownEvent(t string) bool {
	_, ok := slices.BinarySearch(knownEvents, t)
	return ok
}

// Category decides which rules apply to an email: marketing mail obeys
// unsubscribe, quiet hours and the frequency cap; transactional mail (sales
// owner notifications, account notices) obeys only suppression by bounce,
// complaint or erase.
type Category string

// Email categories.
const (
	CategoryMarketing     Category = "marketing"
	CategoryTransactional Category = "transactional"
)

// Categories lists the email categories. Treat it as read-only.
var Categories = []Category{CategoryMarketing, CategoryTransactional}

// Suppression reasons: why no more mail goes to an address. Only
// ReasonUnsubscribed still allows transactional mail; every other reason
// blocks all mail to the address.
const (
	ReasonUnsubscribed = "unsubscribed"
	ReasonInvalid      = "invalid"
	ReasonBounced      = "bounced"
	ReasonComplained   = "complained"
	ReasonErased       = "erased"
)

// SuppressionReasons lists the suppression reasons, weakest first: a
// suppression is only ever replaced by a stronger reason. Treat it as
// read-only.
var SuppressionReasons = []string{ReasonUnsubscribed, ReasonInvalid, ReasonBounced, ReasonComplained, ReasonErased}

// BlocksMail reports whether an address suppressed for reason gets no
// mail of category: an unsubscribe stops marketing mail only.
func BlocksMail(reason string, category Category) bool {
	return reason != ReasonUnsubscribed || category == CategoryMarketing
}

// Handoff statuses: what became of a lead handed to sales.
const (
	HandoffOpen      = "open"
	HandoffAccepted  = "accepted"
	HandoffEscalated = "escalated"
	HandoffWon       = "won"
	HandoffLost      = "lost"
	HandoffRejected  = "rejected"
)

// HandoffStatuses lists the handoff statuses. Treat it as read-only.
var HandoffStatuses = []string{HandoffOpen, HandoffAccepted, HandoffEscalated, HandoffWon, HandoffLost, HandoffRejected}

// Task statuses, and the kinds of task this project creates (the CRM
// accepts any lower_snake_case kind).
const (
	TaskOpen      = "open"
	TaskDone      = "done"
	TaskCancelled = "cancelled"

	TaskChurnWarning      = "churn_warning"
	TaskHandoffEscalation = "handoff_escalation"
	TaskFollowUp          = "follow_up"
	// TaskDetractorFollowUp: a customer answered the NPS as a detractor.
	TaskDetractorFollowUp = "detractor_follow_up"
)

// Tags the journey sets itself (advocacy and feedback): segments select
// advocates for a case study, detractors for a call.
const (
	TagAdvocate  = "advocate"
	TagPromoter  = "promoter"
	TagDetractor = "detractor"
)

// TaskStatuses lists the task statuses. Treat it as read-only.
var TaskStatuses = []string{TaskOpen, TaskDone, TaskCancelled}
