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

// Follows reports whether events of the type mean something to the
// campaign's advocacy rules, NPS reading or reminders (a type the CRM
// invents, such as webinar_registered, is then not ignored).
func (c *Campaign) Follows(eventType string) bool {
	if c == nil {
		return false
	}
	if _, ok := c.Advocacy.AdvocacyFor(eventType); ok {
		return true
	}
	if c.Advocacy.NPS.Event == eventType {
		return true
	}
	return slices.ContainsFunc(c.Reminders, func(r Reminder) bool { return r.Event == eventType })
}
