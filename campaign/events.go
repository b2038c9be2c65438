package campaign

import "slices"

// IsActivity reports whether an event of this type counts as customer
// activity (resets the inactivity clock in active, reactivates at_risk and
// churned customers). The event types themselves are customer's
// (customer.KnownEventTypes).
func (c *Campaign) IsActivity(eventType string) bool {
	if c == nil {
		return false
	}
	return slices.Contains(c.Active.ActivityEvents, eventType)
}
