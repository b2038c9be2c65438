package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/acme/lifecycle/customer"
)

// A greeting is worth sending a little late (a worker down for hours), but
// not a day after the holiday: "Happy New Year" on the 3rd of January reads
// as a mistake.
func TestHolidayMoreThanADayLateIsSkipped(t *testing.T) {
	s := leadIn(customer.StageActive)
	s.StageEnteredAt = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 09:00 on New Year's Day in the customer's zone.
	due := time.Date(2027, 1, 1, 9, 0, 0, 0, berlin)
	plan := func(now time.Time) action {
		return planner{s: s, c: testCampaign(t), loc: berlin, now: now}.holiday()
	}

	onTime := plan(due.Add(-time.Hour))
	assert.Equal(t, actSend, onTime.Kind)
	assert.True(t, onTime.At.Equal(due), "due at 09:00 local, got %s", onTime.At)
	assert.Equal(t, "holiday-new_year", onTime.StepID)

	late := plan(due.Add(23 * time.Hour))
	assert.Equal(t, actSend, late.Kind, "23 hours late is still sent")

	tooLate := plan(due.Add(25 * time.Hour))
	assert.Equal(t, actSkip, tooLate.Kind, "25 hours late is skipped")
	assert.Equal(t, "more than a day late", tooLate.Reason)
	assert.True(t, tooLate.At.Equal(due))
}
