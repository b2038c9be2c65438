package simulate

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/workflows"
)

// DefaultStart is when a script without `start` begins: a fixed Monday
// morning, so the output of a script is the same on every run.
var DefaultStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Script is a scripted customer: who signs up, when, and which events
// follow. It is read from a small YAML file:
//
//	start: 2026-03-02T08:00:00Z        # optional; default DefaultStart
//	customer:
//	  id: jane
//	  email: jane@example.com
//	  first_name: Jane
//	  company: Example GmbH
//	  role: cto
//	  company_size: 250
//	  time_zone: Europe/Berlin
//	  lead_source: referral
//	signup: {day: 0}                   # optional; default day 0
//	events:
//	  - {day: 1, type: pricing_viewed}
//	  - {day: 5.5, type: demo_requested}
//	  - {at: "2026-03-10T10:00:00Z", type: deal_won}
//	  - {day: 6, type: email_opened, id: open-1}   # same id twice counts once
type Script struct {
	// Source names the file in errors.
	Source   string
	Start    time.Time
	Customer Customer
	// SignupAt is when the signup arrives (Start unless the script says).
	SignupAt time.Time
	// Events in the order they happen (stable for equal times).
	Events []ScriptEvent
}

// Customer is the scripted customer's profile (the signup) as a script
// writes it: customer.Profile's fields under their API names, but the id
// is `id`. Profile returns it; TestCustomerHoldsTheProfile keeps the fields
// the same.
type Customer struct {
	ID          string `yaml:"id" json:"id"`
	Email       string `yaml:"email" json:"email"`
	FirstName   string `yaml:"first_name" json:"first_name,omitempty"`
	LastName    string `yaml:"last_name" json:"last_name,omitempty"`
	Company     string `yaml:"company" json:"company,omitempty"`
	Role        string `yaml:"role" json:"role,omitempty"`
	CompanySize int    `yaml:"company_size" json:"company_size,omitempty"`
	TimeZone    string `yaml:"time_zone" json:"time_zone,omitempty"`
	LeadSource  string `yaml:"lead_source" json:"lead_source,omitempty"`
	OwnerEmail  string `yaml:"owner_email" json:"owner_email,omitempty"`
}

// ScriptEvent is one scripted CRM/product event.
type ScriptEvent struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	At         time.Time      `json:"at"`
	Properties map[string]any `json:"properties,omitempty"`
	// Line is the event's line in the script (0 when unknown).
	Line int `json:"-"`
	// index is the event's position in the file's list.
	index int
}

// Profile is who the customer is.
func (c Customer) Profile() customer.Profile {
	return customer.Profile{
		CustomerID: c.ID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName, Company: c.Company,
		Role: c.Role, CompanySize: c.CompanySize, TimeZone: c.TimeZone, LeadSource: c.LeadSource,
		OwnerEmail: c.OwnerEmail,
	}
}

// signup is the journey's view of the customer.
func (s *Script) signup() workflows.Signup {
	return workflows.SignupOf(s.Customer.Profile(), s.SignupAt)
}

// rawScript is the file as written.
type rawScript struct {
	Start    string     `yaml:"start"`
	Customer *Customer  `yaml:"customer"`
	Signup   *rawWhen   `yaml:"signup"`
	Events   []rawEvent `yaml:"events"`
}

type rawWhen struct {
	Day *float64 `yaml:"day"`
	At  string   `yaml:"at"`
}

type rawEvent struct {
	Day        *float64       `yaml:"day"`
	At         string         `yaml:"at"`
	Type       string         `yaml:"type"`
	ID         string         `yaml:"id"`
	Properties map[string]any `yaml:"properties"`
}

// LoadScript reads and validates a script file (see ParseScript).
func LoadScript(path string) (*Script, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	return ParseScript(data, path)
}

// ParseScript decodes a script strictly (unknown fields are errors) and
// validates it. Errors name the file, the line and the field, e.g.
//
//	jane.yaml: line 4: customer.email: "jane": must be an email address
//	jane.yaml: line 9: unknown field "tpye" in events[1] (did you mean "type"?)
//
// A decoding problem stops at the first; validation problems are all
// reported (joined with errors.Join, as *ScriptError). Event types are
// checked against a campaign by CheckEvents.
func ParseScript(data []byte, source string) (s *Script, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, &ScriptError{Source: source, Msg: fmt.Sprintf("cannot decode: %v", r)}
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &ScriptError{Source: source, Msg: "file is empty; see `starter simulate --help` for the format"}
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(source, err, nil)
	}
	if len(file.Docs) != 1 || file.Docs[0] == nil || file.Docs[0].Body == nil {
		return nil, &ScriptError{Source: source, Msg: "want exactly one YAML document holding start, customer and events"}
	}
	idx := indexPaths(file)
	var raw rawScript
	if err := yaml.UnmarshalWithOptions(data, &raw, yaml.DisallowUnknownField()); err != nil {
		return nil, yamlError(source, err, idx)
	}
	v := &scriptValidator{source: source, idx: idx}
	s = v.build(raw)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return s, nil
}

type scriptValidator struct {
	source string
	idx    *pathIndex
	errs   []error
}

func (v *scriptValidator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &ScriptError{Source: v.source, Line: v.idx.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *scriptValidator) build(raw rawScript) *Script {
	s := &Script{Source: v.source, Start: DefaultStart}
	if raw.Start != "" {
		if t, err := parseTime(raw.Start); err != nil {
			v.add("start", "%v", err)
		} else {
			s.Start = t
		}
	}
	if raw.Customer == nil {
		v.add("customer", "missing: add customer: {id, email, first_name, company, role, company_size, time_zone, lead_source}")
	} else {
		s.Customer = *raw.Customer
		s.Customer.Email = strings.TrimSpace(s.Customer.Email)
		v.customer(s.signup())
	}
	s.SignupAt = s.Start
	if raw.Signup != nil {
		if t, ok := v.when("signup", raw.Signup.Day, raw.Signup.At, s.Start); ok {
			s.SignupAt = t
		}
	}
	for i, e := range raw.Events {
		path := fmt.Sprintf("events[%d]", i)
		at, ok := v.when(path, e.Day, e.At, s.Start)
		if strings.TrimSpace(e.Type) == "" {
			v.add(path+".type", "missing: every event needs a type, e.g. type: pricing_viewed")
			ok = false
		}
		if !ok {
			continue
		}
		id := e.ID
		if id == "" {
			id = fmt.Sprintf("%s-%d-%s", orDefault(s.Customer.ID, "customer"), i+1, e.Type)
		}
		s.Events = append(s.Events, ScriptEvent{ID: id, Type: strings.TrimSpace(e.Type), At: at, Properties: e.Properties, Line: v.idx.line(path), index: i})
	}
	sort.SliceStable(s.Events, func(i, j int) bool { return s.Events[i].At.Before(s.Events[j].At) })
	return s
}

// customer maps the signup's validation (which names the API's fields) to
// the script's fields.
func (v *scriptValidator) customer(sg workflows.Signup) {
	err := sg.Validate()
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		msg := e.Error()
		field, rest, _ := strings.Cut(msg, " ")
		field = strings.TrimSuffix(field, ":")
		if field == "customer_id" {
			field = "id"
		}
		path := "customer." + field
		if _, ok := v.idx.lines[path]; !ok && !slices.Contains(fieldsAt("customer"), field) {
			path, rest = "customer", msg
		}
		if field == "id" && sg.CustomerID == "" {
			rest = "missing: give the customer an id, e.g. id: jane"
		}
		if field == "email" && sg.Email == "" {
			rest = "missing: the journey needs an address to send to, e.g. email: jane@example.com"
		}
		v.add(path, "%s", strings.TrimPrefix(strings.TrimSpace(rest), ": "))
	}
}

// when resolves `day` (days after start, fractions allowed) or `at` (a
// timestamp), exactly one of which must be given.
func (v *scriptValidator) when(path string, day *float64, at string, start time.Time) (time.Time, bool) {
	switch {
	case day != nil && at != "":
		v.add(path, "give either day or at, not both")
		return time.Time{}, false
	case day != nil:
		d := *day
		if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
			v.add(path+".day", "%g: must be 0 or more (days after start)", d)
			return time.Time{}, false
		}
		if d > 100*365 {
			v.add(path+".day", "%g: more than 100 years after start", d)
			return time.Time{}, false
		}
		return start.Add(time.Duration(d * float64(24*time.Hour))).Truncate(time.Second), true
	case at != "":
		t, err := parseTime(at)
		if err != nil {
			v.add(path+".at", "%v", err)
			return time.Time{}, false
		}
		if t.Before(start) {
			v.add(path+".at", "%s is before the script's start %s", t.Format(time.RFC3339), start.Format(time.RFC3339))
			return time.Time{}, false
		}
		return t, true
	}
	v.add(path, "missing day or at: say when, e.g. day: 3 or at: \"2026-03-10T10:00:00Z\"")
	return time.Time{}, false
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: write e.g. 2026-03-02T09:00:00Z (RFC 3339 with a zone) or 2026-03-02", s)
}

// CheckEvents checks the script's event types against a campaign: a type
// the journey does not know and the campaign neither scores nor counts as
// activity would only be recorded and ignored, which in a script is almost
// always a typo.
func (s *Script) CheckEvents(c *campaign.Campaign) error {
	known := map[string]bool{}
	for _, t := range customer.KnownEventTypes {
		known[t] = true
	}
	for t := range c.Scoring.EventPoints {
		known[t] = true
	}
	for _, t := range c.Active.ActivityEvents {
		known[t] = true
	}
	// Types of the campaign's own: advocacy, the NPS answer, reminders.
	for _, e := range c.Advocacy.Events {
		known[e.Type] = true
	}
	for _, r := range c.Reminders {
		if r.Event != "" {
			known[r.Event] = true
		}
	}
	if c.Advocacy.NPS.Event != "" {
		known[c.Advocacy.NPS.Event] = true
	}
	names := make([]string, 0, len(known))
	for t := range known {
		names = append(names, t)
	}
	sort.Strings(names)
	var errs []error
	for _, e := range s.Events {
		if known[e.Type] {
			continue
		}
		errs = append(errs, &ScriptError{Source: s.Source, Line: e.Line, Path: fmt.Sprintf("events[%d].type", e.index),
			Msg: fmt.Sprintf("unknown event type %q%s; known types: %s", e.Type, campaign.Suggest(e.Type, names), strings.Join(names, ", "))})
	}
	return errors.Join(errs...)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
