package campaign

import (
	"slices"
	"sort"
)

// Event types the journey understands. CRM and product systems send these;
// scoring, activity and the stage machine refer to them by name.
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
)

// KnownEventTypes lists every event type the journey understands, sorted.
// Treat it as read-only; IsKnownEvent does not depend on it.
var KnownEventTypes = knownEventTypes()

// knownEvents is the private copy IsKnownEvent uses, so a caller that
// modifies KnownEventTypes cannot change what counts as known.
var knownEvents = knownEventTypes()

func knownEventTypes() []string {
	t := []string{
		EventTrialSignup, EventEmailOpened, EventEmailClicked, EventContentDownloaded,
		EventWebinarAttended, EventPricingViewed, EventDemoRequested, EventTrialActivated,
		EventSalesAccepted, EventSalesRejected, EventDealWon, EventDealLost, EventPurchase,
		EventLogin, EventFeatureUsed, EventSupportTicket, EventNPSAnswered, EventReviewLeft,
		EventReferralMade, EventUnsubscribe, EventEmailBounced, EventEmailComplained, EventErase,
	}
	sort.Strings(t)
	return t
}

// IsKnownEvent reports whether t is one of KnownEventTypes.
func IsKnownEvent(t string) bool {
	_, ok := slices.BinarySearch(knownEvents, t)
	return ok
}

// IsActivity reports whether an event of this type counts as customer
// activity (resets the inactivity clock in active, reactivates at_risk and
// churned customers).
func (c *Campaign) IsActivity(eventType string) bool {
	if c == nil {
		return false
	}
	return slices.Contains(c.Active.ActivityEvents, eventType)
}
