package simulate

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer/customertest"
)

var update = flag.Bool("update", false, "rewrite simulate/testdata/*.golden from the current output")

const day = 24 * time.Hour

// shipped is the campaign the golden files are about.
const shipped = "../campaign/campaigns/saas-lifecycle.yaml"

// goldenUntil is how long each example script is simulated.
var goldenUntil = map[string]time.Duration{
	"jane": 365 * day,
	"ben":  60 * day,
	"ada":  300 * day,
	"dan":  300 * day,
}

func loadShipped(t *testing.T) *campaign.Campaign {
	t.Helper()
	c, err := campaign.LoadFile(shipped)
	require.NoError(t, err)
	c.Source = "campaign/campaigns/saas-lifecycle.yaml"
	return c
}

func simulateFile(t *testing.T, c *campaign.Campaign, script string, until time.Duration) (*Result, error) {
	t.Helper()
	s, err := LoadScript(script)
	require.NoError(t, err)
	s.Source = filepath.ToSlash(filepath.Join("simulate", script))
	return Run(t.Context(), Options{Campaign: c, Script: s, Until: until})
}

// TestGolden simulates every example script against the shipped campaign
// and compares the text and JSON output with testdata/NAME.golden and
// NAME.json.golden (go test ./simulate -update rewrites them).
func TestGolden(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".yaml")
		t.Run(name, func(t *testing.T) {
			until, ok := goldenUntil[name]
			if !ok {
				until = 90 * day
			}
			started := time.Now()
			res, err := simulateFile(t, loadShipped(t), script, until)
			elapsed := time.Since(started)
			require.NoError(t, err)
			t.Logf("%s: %s of journey time in %s (%d runs)", name, until, elapsed.Round(time.Millisecond), res.Runs)
			assert.Less(t, elapsed, 15*time.Second, "a simulation must take seconds, not minutes")

			var text, js bytes.Buffer
			require.NoError(t, res.WriteText(&text))
			require.NoError(t, res.WriteJSON(&js))
			golden(t, "testdata/"+name+".golden", text.Bytes())
			golden(t, "testdata/"+name+".json.golden", js.Bytes())
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file yet: run go test ./simulate -update")
	assert.Equal(t, string(want), string(got), "output differs from %s (if the change is intended: go test ./simulate -update)", path)
}

func TestSameScriptSameOutput(t *testing.T) {
	var outs []string
	for range 2 {
		res, err := simulateFile(t, loadShipped(t), "testdata/ben.yaml", 60*day)
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, res.WriteText(&b))
		outs = append(outs, b.String())
	}
	assert.Equal(t, outs[0], outs[1])
}

func TestJaneYearTimeline(t *testing.T) {
	res, err := simulateFile(t, loadShipped(t), "testdata/jane.yaml", 365*day)
	require.NoError(t, err)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)

	first := res.Timeline[2]
	assert.Equal(t, KindEmail, first.Kind)
	assert.Equal(t, "welcome", first.Template)
	assert.Equal(t, "Welcome to Acme Analytics, Jane - your trial has started", first.Subject)
	assert.Equal(t, "2026-03-02 09:00", first.At.In(berlin).Format("2006-01-02 15:04"))

	var stages []string
	var kickoff, midyear *Entry
	for i, e := range res.Timeline {
		switch {
		case e.Kind == KindStage:
			stages = append(stages, e.Stage)
		case e.Template == "onboarding_kickoff":
			kickoff = &res.Timeline[i]
		case e.Template == "holiday_midyear":
			midyear = &res.Timeline[i]
		}
	}
	assert.Equal(t, []string{"trial", "nurture", "sales", "onboarding", "active", "at_risk", "active", "at_risk", "churned"}, stages)
	require.NotNil(t, kickoff)
	assert.Equal(t, "2026-03-21 08:00", kickoff.At.In(berlin).Format("2006-01-02 15:04"), "deal won at 21:30: kickoff waits for the end of quiet hours")
	assert.Contains(t, kickoff.Note, "quiet hours")
	require.NotNil(t, midyear, "active on 1 July: midyear greeting")
	assert.Equal(t, "2026-07-01 09:00", midyear.At.In(berlin).Format("2006-01-02 15:04"))
	assert.Equal(t, "churned", res.Final.Stage)
	assert.Greater(t, res.Runs, 8, "continue-as-new at every stage boundary, followed across runs")
}

func TestBenCapDuplicateBounceUnsubscribe(t *testing.T) {
	res, err := simulateFile(t, loadShipped(t), "testdata/ben.yaml", 60*day)
	require.NoError(t, err)
	kinds := map[string]int{}
	var capped bool
	for _, e := range res.Timeline {
		kinds[e.Kind]++
		if strings.Contains(e.Note, "frequency cap") {
			capped = true
		}
	}
	assert.True(t, capped, "the restarted nurture sequence hits 3 emails in 7 days")
	assert.Equal(t, 1, kinds[KindDuplicate])
	assert.Equal(t, 2, kinds[KindSkipped], "sends after the bounce are skipped")
	assert.True(t, res.Final.Ended)
	assert.Equal(t, "unsubscribed", res.Final.Stage)
	assert.Equal(t, 2, res.Emails.Skipped)
}

// A template that validates with the sample data but cannot render for a
// real customer email (it needs an owner-notice field) shows up as a failed
// send; the journey goes on and Run says so.
func TestBrokenTemplateShowsUp(t *testing.T) {
	c := loadShipped(t)
	tpl := c.Templates["activation_tips"]
	tpl.Subject = "Tips for {{.Extra.CustomerName}}"
	c.Templates["activation_tips"] = tpl
	require.NoError(t, c.Validate(), "renders with the sample data, which has every Extra key")

	res, err := simulateFile(t, c, "testdata/jane.yaml", 10*day)
	require.ErrorIs(t, err, ErrTemplates)
	require.NotNil(t, res)
	var failed []Entry
	for _, e := range res.Timeline {
		if e.Status == StatusFailed {
			failed = append(failed, e)
		}
	}
	require.Len(t, failed, 1)
	assert.Equal(t, "activation_tips", failed[0].Template)
	assert.Contains(t, failed[0].Detail, "templates.activation_tips.subject")
	assert.Equal(t, 1, res.Emails.Failed)
	var text bytes.Buffer
	require.NoError(t, res.WriteText(&text))
	assert.Contains(t, text.String(), "✗ FAILED activation_tips")
	assert.Contains(t, text.String(), "offer_onboarding_call", "the journey goes on to nurture")
}

func TestEventsAfterTheEndAreListed(t *testing.T) {
	res, err := simulateFile(t, loadShipped(t), "testdata/ben.yaml", 10*day)
	require.NoError(t, err)
	require.Len(t, res.NotDelivered, 2)
	assert.Equal(t, "email_bounced", res.NotDelivered[0].Type)
	var text bytes.Buffer
	require.NoError(t, res.WriteText(&text))
	assert.Contains(t, text.String(), "not sent   2 scripted events after the end (raise --until): day 15 email_bounced, day 40 unsubscribe")
}

func TestEraseEndsTheJourney(t *testing.T) {
	s, err := ParseScript([]byte(`
customer: {id: eve, email: eve@example.com, first_name: Eve}
events:
  - {day: 2, type: erase}
`), "eve.yaml")
	require.NoError(t, err)
	res, err := Run(t.Context(), Options{Campaign: loadShipped(t), Script: s, Until: 30 * day})
	require.NoError(t, err)
	assert.True(t, res.Final.Ended)
	assert.Equal(t, "erased", res.Final.Stage)
	last := res.Timeline[len(res.Timeline)-1]
	assert.Equal(t, KindEnd, last.Kind)
	var erased bool
	for _, e := range res.Timeline {
		erased = erased || e.Kind == KindErase
	}
	assert.True(t, erased)
}

func TestParseScriptDefaults(t *testing.T) {
	s, err := ParseScript([]byte(`
customer:
  id: c1
  email: c1@example.com
events:
  - {day: 5.5, type: demo_requested}
  - {at: "2026-03-03T10:00:00Z", type: pricing_viewed, id: pv}
  - {day: 1, type: login}
`), "s.yaml")
	require.NoError(t, err)
	assert.Equal(t, DefaultStart, s.Start)
	assert.Equal(t, DefaultStart, s.SignupAt)
	require.Len(t, s.Events, 3)
	assert.Equal(t, "login", s.Events[0].Type, "sorted by time")
	assert.Equal(t, DefaultStart.Add(day), s.Events[0].At)
	assert.Equal(t, "pv", s.Events[1].ID)
	assert.Equal(t, "c1-1-demo_requested", s.Events[2].ID)
	assert.Equal(t, DefaultStart.Add(5*day+12*time.Hour), s.Events[2].At)
}

func TestParseScriptErrorsNameFieldAndLine(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"unknown field": {"customer:\n  id: a\n  email: a@example.com\nevents:\n  - {day: 1, tpye: login}\n",
			`s.yaml: line 5: unknown field "tpye" in events[0] (did you mean "type"?)`},
		"unknown top-level": {"custmer: {}\n", `s.yaml: line 1: unknown field "custmer" at the top level (did you mean "customer"?)`},
		"wrong type": {"customer:\n  id: a\n  email: a@example.com\n  company_size: lots\n",
			`s.yaml: line 4: customer.company_size: expected a whole number, got text`},
		"day not a number": {"customer: {id: a, email: a@example.com}\nevents:\n  - {day: tomorrow, type: login}\n",
			`s.yaml: line 3: events[0].day: expected a number, got text`},
		"bad email":        {"customer:\n  id: a\n  email: nope\n", `s.yaml: line 3: customer.email: "nope": must be`},
		"missing email":    {"customer:\n  id: a\n", `s.yaml: line 1: customer.email: missing: the journey needs an address`},
		"missing customer": {"events: []\n", `s.yaml: line 0: customer`},
		"bad zone": {"customer:\n  id: a\n  email: a@example.com\n  time_zone: Europe/Berln\n",
			`s.yaml: line 4: customer.time_zone: "Europe/Berln": unknown IANA time zone`},
		"bad lead source": {"customer:\n  id: a\n  email: a@example.com\n  lead_source: friend\n",
			`s.yaml: line 4: customer.lead_source: "friend": must be one of`},
		"both day and at": {"customer: {id: a, email: a@example.com}\nevents:\n  - {day: 1, at: \"2026-03-05T00:00:00Z\", type: login}\n",
			`s.yaml: line 3: events[0]: give either day or at, not both`},
		"neither day nor at": {"customer: {id: a, email: a@example.com}\nevents:\n  - {type: login}\n",
			`s.yaml: line 3: events[0]: missing day or at`},
		"negative day": {"customer: {id: a, email: a@example.com}\nevents:\n  - {day: -1, type: login}\n",
			`s.yaml: line 3: events[0].day: -1: must be 0 or more`},
		"before start": {"start: 2026-03-02T09:00:00Z\ncustomer: {id: a, email: a@example.com}\nevents:\n  - {at: \"2026-03-01T09:00:00Z\", type: login}\n",
			`s.yaml: line 4: events[0].at: 2026-03-01T09:00:00Z is before the script's start`},
		"bad start": {"start: next monday\ncustomer: {id: a, email: a@example.com}\n", `s.yaml: line 1: start: "next monday" is not a time`},
		"missing type": {"customer: {id: a, email: a@example.com}\nevents:\n  - {day: 1}\n",
			`s.yaml: line 3: events[0].type: missing`},
		"empty":  {"  \n", `s.yaml: file is empty`},
		"syntax": {"customer: {id: a\n", `s.yaml: line`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseScript([]byte(tc.src), "s.yaml")
			require.Error(t, err)
			assert.Contains(t, err.Error(), strings.Replace(tc.want, "s.yaml: line 0: ", "s.yaml: ", 1))
		})
	}
}

func TestParseScriptReportsEveryProblem(t *testing.T) {
	_, err := ParseScript([]byte("customer:\n  id: a\n  email: nope\nevents:\n  - {day: -1, type: login}\n  - {type: login}\n"), "s.yaml")
	require.Error(t, err)
	var se *ScriptError
	require.True(t, errors.As(err, &se))
	msg := err.Error()
	assert.Contains(t, msg, "line 3: customer.email")
	assert.Contains(t, msg, "line 5: events[0].day")
	assert.Contains(t, msg, "line 6: events[1]: missing day or at")
}

func TestUnknownEventTypeIsRejectedWithSuggestion(t *testing.T) {
	s, err := ParseScript([]byte("customer: {id: a, email: a@example.com}\nevents:\n  - {day: 1, type: login}\n  - {day: 2, type: priceing_viewed}\n"), "s.yaml")
	require.NoError(t, err)
	_, err = Run(t.Context(), Options{Campaign: loadShipped(t), Script: s, Until: 10 * day})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `s.yaml: line 4: events[1].type: unknown event type "priceing_viewed" (did you mean "pricing_viewed"?)`)
}

// The script's customer is the customer's profile, field for field (the id
// is written `id`).
func TestCustomerHoldsTheProfile(t *testing.T) {
	customertest.RequireProfileFields(t, Customer.Profile, map[string]string{"CustomerID": "ID"})
}
