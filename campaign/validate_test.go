package campaign

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidBaseAndEmbeddedValidate(t *testing.T) {
	require.NoError(t, validBase(t).Validate())
	require.NoError(t, embeddedSaaS(t).Validate())
}

// Every rule: the mutation breaks exactly that rule, and the error names the
// file and the field.
func TestValidateRules(t *testing.T) {
	const day = Duration(24 * time.Hour)
	cases := []struct {
		name   string
		mutate func(c *Campaign)
		path   string // expected field path
		msg    string // expected part of the reason
	}{
		// identity
		{"id empty", func(c *Campaign) { c.ID = "" }, "id", "required"},
		{"id pattern", func(c *Campaign) { c.ID = "Demo Campaign" }, "id", `"Demo Campaign" may only contain a-z, 0-9`},
		{"version empty", func(c *Campaign) { c.Version = "" }, "version", "required"},
		{"version pattern", func(c *Campaign) { c.Version = "v1/2" }, "version", "may only contain"},
		{"product empty", func(c *Campaign) { c.Product = " " }, "product", "required"},
		{"time zone empty", func(c *Campaign) { c.DefaultTimeZone = "" }, "default_time_zone", "empty time zone name"},
		{"time zone unknown", func(c *Campaign) { c.DefaultTimeZone = "Mars/Olympus_Mons" }, "default_time_zone", `unknown time zone "Mars/Olympus_Mons"`},
		{"time zone Local", func(c *Campaign) { c.DefaultTimeZone = "Local" }, "default_time_zone", `"Local" is not allowed`},

		// sending
		{"quiet hours equal", func(c *Campaign) { c.Sending.QuietHours.End = c.Sending.QuietHours.Start }, "sending.quiet_hours", "start and end must differ (both 21:00)"},
		{"quiet hours out of range", func(c *Campaign) { c.Sending.QuietHours.Start = ClockTime{24, 0} }, "sending.quiet_hours.start", "must be between 00:00 and 23:59 (got 24:00)"},
		{"cap max", func(c *Campaign) { c.Sending.FrequencyCap.Max = 0 }, "sending.frequency_cap.max", "must be ≥ 1 (got 0)"},
		{"cap window", func(c *Campaign) { c.Sending.FrequencyCap.Window = 0 }, "sending.frequency_cap.window", "must be > 0 (got 0)"},
		{"cap over_cap", func(c *Campaign) { c.Sending.FrequencyCap.OverCap = "later" }, "sending.frequency_cap.over_cap", `must be "delay" or "drop" (got "later")`},

		// scoring
		{"threshold zero", func(c *Campaign) { c.Scoring.Threshold = 0 }, "scoring.threshold", "must be > 0 (got 0)"},
		{"source missing", func(c *Campaign) { delete(c.Scoring.SourcePoints, "cold"); delete(c.Scoring.SourcePoints, "expert") }, "scoring.source_points", "missing expert, cold"},
		{"source unknown", func(c *Campaign) { c.Scoring.SourcePoints["partner"] = 5 }, "scoring.source_points.partner", `unknown lead source "partner"`},
		{"source typo", func(c *Campaign) { c.Scoring.SourcePoints["refferal"] = 5 }, "scoring.source_points.refferal", `(did you mean "referral"?)`},
		{"event unknown", func(c *Campaign) { c.Scoring.EventPoints["page_view"] = 1 }, "scoring.event_points.page_view", `unknown event type "page_view"`},
		{"event typo", func(c *Campaign) { c.Scoring.EventPoints["demo_requestd"] = 1 }, "scoring.event_points.demo_requestd", `did you mean "demo_requested"?`},
		{"size order", func(c *Campaign) {
			c.Scoring.Fit.CompanySize = []SizeBand{{Min: 0, Points: 0}, {Min: 500, Points: 10}}
		}, "scoring.fit.company_size[1].min", "largest min down"},
		{"size negative", func(c *Campaign) { c.Scoring.Fit.CompanySize = []SizeBand{{Min: -1, Points: 1}} }, "scoring.fit.company_size[0].min", "must be ≥ 0 (got -1)"},
		{"role not normalised", func(c *Campaign) { c.Scoring.Fit.Roles["VP Engineering"] = 8 }, "scoring.fit.roles.VP Engineering", `write roles normalised: "vp_engineering"`},
		{"decay points negative", func(c *Campaign) { c.Scoring.Decay.Points = -1 }, "scoring.decay.points", "must be ≥ 0 (got -1)"},
		{"decay every zero", func(c *Campaign) { c.Scoring.Decay.Every = 0 }, "scoring.decay.every", "must be > 0 (got 0)"},

		// steps
		{"step id empty", func(c *Campaign) { c.Trial.Steps[0].ID = "" }, "trial.steps[0].id", "step id is required"},
		{"step id pattern", func(c *Campaign) { c.Trial.Steps[0].ID = "Step One" }, "trial.steps[0].id", `step id "Step One" may only contain`},
		{"step id duplicate", func(c *Campaign) {
			c.Trial.Steps = append(c.Trial.Steps, Step{ID: "welcome", Offset: day, Template: "hello"})
		}, "trial.steps[1].id", `duplicate step id "welcome" (also trial.steps[0])`},
		{"step offset negative", func(c *Campaign) { c.Onboarding.Steps[0].Offset = -day }, "onboarding.steps[0].offset", "must be ≥ 0 (got -1d)"},
		{"step offsets decrease", func(c *Campaign) {
			c.Onboarding.Steps = []Step{{ID: "a", Offset: 2 * day, Template: "hello"}, {ID: "b", Offset: day, Template: "hello"}}
		}, "onboarding.steps[1].offset", "offsets must not decrease (1d after 2d)"},
		{"step template missing", func(c *Campaign) { c.Trial.Steps[0].Template = "helo" }, "trial.steps[0].template", `template "helo" not found (did you mean "hello"?)`},
		{"step template empty", func(c *Campaign) { c.AtRisk.WinBack[0].Template = "" }, "at_risk.win_back[0].template", "required"},
		{"variants outside nurture", func(c *Campaign) { c.Trial.Steps[0].Variants = map[string]string{"late": "offer"} }, "trial.steps[0].variants", "only used in nurture"},
		{"trial length", func(c *Campaign) { c.Trial.Length = 0; c.Trial.Steps[0].Offset = day }, "trial.length", "must be ≥ the last step's offset (0 < 1d)"},

		// nurture
		{"no bands", func(c *Campaign) { c.Nurture.Bands = nil; c.Nurture.Steps[0].Variants = nil }, "nurture.bands", "at least one band"},
		{"first band not 0", func(c *Campaign) { c.Nurture.Bands[0].MinScore = 5 }, "nurture.bands[0].min_score", "first band must start at 0 (got 5)"},
		{"bands unsorted", func(c *Campaign) {
			c.Nurture.Bands = append(c.Nurture.Bands, Band{Name: "mid", MinScore: 20})
		}, "nurture.bands[2].min_score", "sorted by min_score, ascending (20 after 30)"},
		{"band duplicate", func(c *Campaign) { c.Nurture.Bands = append(c.Nurture.Bands, Band{Name: "late", MinScore: 40}) }, "nurture.bands[2].name", `duplicate band "late"`},
		{"band name", func(c *Campaign) { c.Nurture.Bands[1].Name = "" }, "nurture.bands[1].name", "band name is required"},
		{"variant unknown band", func(c *Campaign) { c.Nurture.Steps[0].Variants["lat"] = "offer" }, "nurture.steps[0].variants.lat", `unknown band "lat" (bands: early, late)`},
		{"variant template missing", func(c *Campaign) { c.Nurture.Steps[0].Variants["late"] = "nope" }, "nurture.steps[0].variants.late", `template "nope" not found`},
		{"nurture template empty, variants incomplete", func(c *Campaign) { c.Nurture.Steps[0].Template = "" }, "nurture.steps[0].template", "required"},

		// sales
		{"owner email invalid", func(c *Campaign) { c.Sales.OwnerEmail = "sales-at-demo" }, "sales.owner_email", `"sales-at-demo" is not a valid email address`},
		{"owner email with name", func(c *Campaign) { c.Sales.OwnerEmail = "Sales <sales@demo.example>" }, "sales.owner_email", "want a plain address"},
		{"owner email the mailer refuses", func(c *Campaign) { c.Sales.OwnerEmail = "sales@localhost" }, "sales.owner_email", "the domain must be a host name like example.com"},
		{"owner email empty", func(c *Campaign) { c.Sales.OwnerEmail = "" }, "sales.owner_email", "required"},
		{"escalation email invalid", func(c *Campaign) { c.Sales.EscalationEmail = "lead@" }, "sales.escalation_email", "not a valid email address"},
		{"notify template missing", func(c *Campaign) { c.Sales.NotifyTemplate = "handoff" }, "sales.notify_template", `template "handoff" not found`},
		{"notify template marketing", func(c *Campaign) { c.Sales.NotifyTemplate = "hello" }, "sales.notify_template", `template "hello" must have category transactional (it is marketing)`},
		{"escalation template marketing", func(c *Campaign) { c.Sales.EscalationTemplate = "offer" }, "sales.escalation_template", "must have category transactional"},
		{"sla zero", func(c *Campaign) { c.Sales.SLA = 0 }, "sales.sla", "must be > 0 (got 0)"},
		{"top reasons negative", func(c *Campaign) { c.Sales.TopReasons = -1 }, "sales.top_reasons", "must be ≥ 0"},

		// onboarding
		{"onboarding length", func(c *Campaign) { c.Onboarding.Steps[0].Offset = 10 * day }, "onboarding.length", "must be ≥ the last step's offset (7d < 10d)"},
		{"delivery owner invalid", func(c *Campaign) { c.Onboarding.DeliveryOwnerEmail = "success" }, "onboarding.delivery_owner_email", "not a valid email address"},

		// active
		{"inactivity window", func(c *Campaign) { c.Active.InactivityWindow = 0 }, "active.inactivity_window", "must be > 0 (got 0)"},
		{"activity event unknown", func(c *Campaign) { c.Active.ActivityEvents = []string{"login", "logins"} }, "active.activity_events[1]", `unknown event type "logins" (did you mean "login"?)`},
		{"no activity events", func(c *Campaign) { c.Active.ActivityEvents = nil }, "active.activity_events", "at least one event type"},
		{"holiday cron", func(c *Campaign) { c.Active.Holidays[0].Cron = "0 9 1 13 *" }, "active.holidays[0].cron", `holiday "new_year": invalid cron expression "0 9 1 13 *"`},
		{"holiday cron fields", func(c *Campaign) { c.Active.Holidays[0].Cron = "0 9 1 1" }, "active.holidays[0].cron", `holiday "new_year": invalid cron expression "0 9 1 1"`},
		{"holiday cron never", func(c *Campaign) { c.Active.Holidays[0].Cron = "0 9 30 2 *" }, "active.holidays[0].cron", `holiday "new_year": cron expression "0 9 30 2 *" never fires`},
		{"holiday cron tz", func(c *Campaign) { c.Active.Holidays[0].Cron = "CRON_TZ=Asia/Tokyo 0 9 1 1 *" }, "active.holidays[0].cron", "time zone prefix is not allowed"},
		{"holiday cron every", func(c *Campaign) { c.Active.Holidays[0].Cron = "@every 24h" }, "active.holidays[0].cron", "@every is not allowed"},
		{"holiday id duplicate", func(c *Campaign) {
			c.Active.Holidays = append(c.Active.Holidays, Holiday{ID: "new_year", Cron: "0 9 2 1 *", Template: "hello"})
		}, "active.holidays[1].id", `duplicate holiday id "new_year"`},
		{"holiday id empty", func(c *Campaign) { c.Active.Holidays[0].ID = "" }, "active.holidays[0].id", "holiday id is required"},
		{"holiday template", func(c *Campaign) { c.Active.Holidays[0].Template = "xmas" }, "active.holidays[0].template", `template "xmas" not found`},
		{"ask template", func(c *Campaign) { c.Active.Asks = []string{"hello", "review"} }, "active.asks[1]", `template "review" not found`},
		{"ask every", func(c *Campaign) { c.Active.AskEvery = 0 }, "active.ask_every", "must be > 0 (got 0)"},

		// at risk
		{"churn after < last win-back", func(c *Campaign) {
			c.AtRisk.WinBack = append(c.AtRisk.WinBack, Step{ID: "w2", Offset: 20 * day, Template: "offer"})
		}, "at_risk.churn_after", "must be ≥ the last win-back offset (14d < 20d)"},
		{"churn after zero", func(c *Campaign) { c.AtRisk.ChurnAfter = 0 }, "at_risk.churn_after", "must be > 0"},
		{"alert template marketing", func(c *Campaign) { c.AtRisk.AlertTemplate = "hello" }, "at_risk.alert_template", "must have category transactional"},
		{"task title", func(c *Campaign) { c.AtRisk.TaskTitle = "" }, "at_risk.task_title", "required"},
		{"task due", func(c *Campaign) { c.AtRisk.TaskDue = 0 }, "at_risk.task_due", "must be > 0"},

		// churned
		{"churned mode", func(c *Campaign) { c.Churned.Mode = "sometimes" }, "churned.mode", `must be "periodic" or "end" (got "sometimes")`},
		{"churned every", func(c *Campaign) { c.Churned.Every = 0 }, "churned.every", "must be > 0 (got 0)"},
		{"churned attempts", func(c *Campaign) { c.Churned.MaxAttempts = 0 }, "churned.max_attempts", "must be ≥ 1 (got 0)"},
		{"churned template", func(c *Campaign) { c.Churned.Template = "" }, "churned.template", "required"},

		// templates
		{"template parse error", func(c *Campaign) { setTpl(c, "hello", func(t *Template) { t.Text = "Hi {{.FirstName" }) }, "templates.hello.text", "template: hello.text:1: unclosed action"},
		{"template html render error", func(c *Campaign) { setTpl(c, "hello", func(t *Template) { t.HTML = "<p>{{.Nope}}</p>" }) }, "templates.hello.html", "template: hello.html:1:"},
		{"template unknown extra key", func(c *Campaign) {
			setTpl(c, "notice", func(t *Template) { t.Text = "{{.Extra.Owner}}" })
		}, "templates.notice.text", `map has no entry for key "Owner"`},
		{"template unknown function", func(c *Campaign) { setTpl(c, "offer", func(t *Template) { t.Subject = "{{upper .Company}}" }) }, "templates.offer.subject", `function "upper" not defined`},
		{"template category", func(c *Campaign) { setTpl(c, "offer", func(t *Template) { t.Category = "newsletter" }) }, "templates.offer.category", `must be "marketing" or "transactional" (got "newsletter")`},
		{"subject line break", func(c *Campaign) { setTpl(c, "offer", func(t *Template) { t.Subject = "An offer\nBcc: x@y" }) }, "templates.offer.subject", "rendered subject contains a line break"},
		{"subject line break after render", func(c *Campaign) {
			setTpl(c, "notice", func(t *Template) { t.Subject = "Lead {{.Extra.CustomerName}}{{printf \"%c\" 13}}" + "x" })
		}, "templates.notice.subject", "rendered subject contains a line break"},
		{"subject empty", func(c *Campaign) { setTpl(c, "offer", func(t *Template) { t.Subject = "" }) }, "templates.offer.subject", "required"},
		{"text empty", func(c *Campaign) { setTpl(c, "offer", func(t *Template) { t.Text = "" }) }, "templates.offer.text", "required"},
		{"marketing without unsubscribe (text)", func(c *Campaign) { setTpl(c, "offer", func(t *Template) { t.Text = "20% off" }) }, "templates.offer.text", "must include the unsubscribe link"},
		{"marketing without unsubscribe (html)", func(c *Campaign) { setTpl(c, "hello", func(t *Template) { t.HTML = "<p>Hi</p>" }) }, "templates.hello.html", "must include the unsubscribe link"},
		{"template id", func(c *Campaign) { c.Templates["Hello World"] = c.Templates["hello"] }, "templates.Hello World", "may only contain"},
		{"no templates", func(c *Campaign) { c.Templates = nil }, "templates", "at least one template"},

		// contact policy, advocacy, reminders
		{"min gap negative", func(c *Campaign) { c.Sending.MinGap = -Duration(time.Hour) }, "sending.min_gap", "must not be negative"},
		{"advocacy event type", func(c *Campaign) { c.Advocacy.Events = []AdvocacyEvent{{Type: ""}} }, "advocacy.events[0].type", "is required"},
		{"advocacy ends unknown ask", func(c *Campaign) {
			c.Advocacy.Events = []AdvocacyEvent{{Type: "review_left", EndsAsks: []string{"review_ask"}}}
		}, "advocacy.events[0].ends_asks[0]", `"review_ask" is not one of active.asks [hello]`},
		{"nps bands overlap", func(c *Campaign) { c.Advocacy.NPS = NPS{PromoterMin: 7, DetractorMax: 7} }, "advocacy.nps.detractor_max", "promoter_min - 1"},
		{"detractor notice marketing", func(c *Campaign) { c.Advocacy.Detractor.NotifyTemplate = "offer" }, "advocacy.detractor.notify_template", "must have category transactional"},
		{"reminder without date", func(c *Campaign) { c.Reminders = []Reminder{{ID: "r1", Template: "offer"}} }, "reminders[0].date", "required"},
		{"reminder template", func(c *Campaign) {
			c.Reminders = []Reminder{{ID: "r1", Date: "renewal_date", Template: "ofer"}}
		}, "reminders[0].template", `template "ofer" not found`},
		{"reminder id twice", func(c *Campaign) {
			c.Reminders = []Reminder{{ID: "r1", Date: "a", Template: "offer"}, {ID: "r1", Date: "b", Template: "offer"}}
		}, "reminders[1].id", "used twice"},
		{"reminder at", func(c *Campaign) {
			c.Reminders = []Reminder{{ID: "r1", Date: "a", Template: "offer", At: &ClockTime{25, 0}}}
		}, "reminders[0].at", "must be between 00:00 and 23:59"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validBase(t)
			tc.mutate(c)
			err := c.Validate()
			require.Error(t, err)
			want := "testdata/valid.yaml: " + tc.path + ": "
			msgs := joined(err)
			found := false
			for _, m := range msgs {
				if strings.HasPrefix(m, want) && strings.Contains(m, tc.msg) {
					found = true
				}
			}
			assert.True(t, found, "want %q…%q in:\n%s", want, tc.msg, err)
		})
	}
}

func setTpl(c *Campaign, id string, f func(*Template)) {
	t := c.Templates[id]
	f(&t)
	c.Templates[id] = t
}

func TestValidateAcceptsVariants(t *testing.T) {
	// A nurture step may leave Template empty when variants cover every band.
	c := validBase(t)
	c.Nurture.Steps[0].Template = ""
	c.Nurture.Steps[0].Variants = map[string]string{"early": "hello", "late": "offer"}
	require.NoError(t, c.Validate())

	// churned mode "end" needs nothing else; no quiet hours or cap is fine.
	c = validBase(t)
	c.Churned = Churned{Mode: ChurnedEnd}
	c.Sending = Sending{}
	c.Scoring.Decay = Decay{}
	require.NoError(t, c.Validate())

	// no asks: ask_every may be 0.
	c = validBase(t)
	c.Active.Asks, c.Active.AskEvery = nil, 0
	require.NoError(t, c.Validate())
}

func TestValidateReportsEverything(t *testing.T) {
	c := validBase(t)
	c.Scoring.Threshold = 0
	c.Sales.SLA = 0
	c.Active.Holidays[0].Cron = "nonsense"
	c.Churned.Mode = ""
	setTpl(c, "offer", func(t *Template) { t.Category = "promo" })
	msgs := joined(c.Validate())
	assert.Len(t, msgs, 5)
	// Stable order: by section, templates by id.
	assert.True(t, strings.HasPrefix(msgs[0], "testdata/valid.yaml: scoring.threshold:"), msgs[0])
	assert.True(t, strings.HasPrefix(msgs[4], "testdata/valid.yaml: templates.offer.category:"), msgs[4])
	assert.Equal(t, msgs, joined(c.Validate()), "deterministic")
}

func TestValidateNil(t *testing.T) {
	var c *Campaign
	assert.Error(t, c.Validate())
}
