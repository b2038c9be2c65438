package campaign

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/acme/lifecycle/customer"
)

// Keys of TemplateData.Extra that the journey fills and that templates may
// use as {{.Extra.Key}}. Validation renders every template with all of them
// set (SampleTemplateData); a template that needs a key which may be absent
// should use {{index .Extra "Key"}}, which renders "" for a missing key,
// while {{.Extra.Key}} fails to render without it.
//
// For notices to an owner (sales handoff, escalation, churn alert) the
// journey fills CustomerID, CustomerName, CustomerEmail, Reasons and Score;
// the other fields of TemplateData describe the customer, not the recipient.
const (
	ExtraCustomerID    = "CustomerID"
	ExtraCustomerName  = "CustomerName"
	ExtraCustomerEmail = "CustomerEmail"
	ExtraReasons       = "Reasons"
	ExtraScore         = "Score"
	ExtraReferralCode  = "ReferralCode"
	// ExtraDate is a reminder's date as the customer reads it
	// ("Monday 20 April 2026", with the time when the date has one).
	ExtraDate = "Date"
)

// Rendered is an email ready to send.
type Rendered struct {
	Subject, Text, HTML string
	Category            customer.Category
}

// SampleUnsubscribeURL is the unsubscribe address SampleTemplateData uses;
// validation checks that marketing templates show it.
const SampleUnsubscribeURL = "https://example.invalid/unsubscribe/sample-token"

// SampleTemplateData is the data validation renders every template with
// (and a preview may use): a fictitious customer with every Extra key set.
func SampleTemplateData(c *Campaign) TemplateData {
	product := "Sample Product"
	if c != nil && c.Product != "" {
		product = c.Product
	}
	return TemplateData{
		FirstName: "Jane", LastName: "Doe", Email: "jane.doe@example.com", Company: "Example Corp",
		Product: product, Stage: string(customer.StageNurture), Score: 42, UnsubscribeURL: SampleUnsubscribeURL,
		Extra: map[string]string{
			ExtraCustomerID:    "cus_sample",
			ExtraCustomerName:  "Jane Doe (Example Corp)",
			ExtraCustomerEmail: "jane.doe@example.com",
			ExtraReasons:       "demo_requested (30), pricing_viewed (10), webinar_attended (8)",
			ExtraScore:         "62",
			ExtraReferralCode:  "JANE-7Q2X",
			ExtraDate:          "Monday 20 April 2026",
		},
	}
}

// CategoryOrDefault returns the template's category: marketing when empty.
func (t Template) CategoryOrDefault() customer.Category {
	if t.Category == "" {
		return customer.CategoryMarketing
	}
	return t.Category
}

// IsMarketing reports whether the template is marketing mail (its category
// is marketing or empty): it carries an unsubscribe link and obeys
// unsubscribe, quiet hours and the frequency cap.
func (t Template) IsMarketing() bool { return t.CategoryOrDefault() == customer.CategoryMarketing }

// Render renders a template of the campaign. data.Product defaults to the
// campaign's product. Errors name the campaign (id@version), the template
// and the part, e.g. `saas-lifecycle@v1: templates.welcome.html: template:
// welcome.html:3:9: executing ...`. The subject is trimmed and must not
// contain a line break. Templates are parsed once per campaign version
// (see Renderer).
func (c *Campaign) Render(templateID string, data TemplateData) (Rendered, error) {
	r, err := c.Renderer(templateID)
	if err != nil {
		return Rendered{}, err
	}
	return r.Render(data)
}

// Renderer returns the template parsed once and kept with the campaign:
// parsing is most of the cost of rendering, and a broadcast renders the same
// template thousands of times. Safe for concurrent use.
func (c *Campaign) Renderer(templateID string) (*Renderer, error) {
	if c == nil {
		return nil, fmt.Errorf("render %q: no campaign", templateID)
	}
	if r, ok := c.renderers.Load(templateID); ok {
		return r.(*Renderer), nil
	}
	t, ok := c.Templates[templateID]
	if !ok {
		return nil, fmt.Errorf("%s: template %q not found", c.Key(), templateID)
	}
	r, err := parseTemplate(templateID, t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Key(), err)
	}
	r.key, r.product = c.Key(), c.Product
	stored, _ := c.renderers.LoadOrStore(templateID, r)
	return stored.(*Renderer), nil
}

// WithoutTemplateBodies is the definition as a journey needs it: every
// template reduced to its category. The journey only decides which template
// and category; the send activity renders from the registry. It keeps each
// journey run's history small (the bodies are most of a campaign).
func (c *Campaign) WithoutTemplateBodies() *Campaign {
	out := &Campaign{
		ID: c.ID, Version: c.Version, Product: c.Product, DefaultTimeZone: c.DefaultTimeZone,
		Sending: c.Sending, Scoring: c.Scoring, Trial: c.Trial, Nurture: c.Nurture, Sales: c.Sales,
		Onboarding: c.Onboarding, Active: c.Active, AtRisk: c.AtRisk, Churned: c.Churned, Source: c.Source,
		Advocacy: c.Advocacy, Reminders: c.Reminders, Tags: c.Tags,
		Templates: make(map[string]Template, len(c.Templates)),
	}
	for id, t := range c.Templates {
		out.Templates[id] = Template{Category: t.CategoryOrDefault()}
	}
	return out
}

// Key is "id@version", how journeys and errors name a campaign version.
func (c *Campaign) Key() string { return c.ID + "@" + c.Version }

// Renderer is a parsed template of a campaign version.
type Renderer struct {
	key, product string
	id           string
	category     customer.Category
	subject      *texttemplate.Template
	text         *texttemplate.Template
	html         *htmltemplate.Template
}

// Render executes the template; see Campaign.Render.
func (r *Renderer) Render(data TemplateData) (Rendered, error) {
	if data.Product == "" {
		data.Product = r.product
	}
	out, err := r.execute(data)
	if err != nil {
		return Rendered{}, fmt.Errorf("%s: %w", r.key, err)
	}
	return out, nil
}

// renderError is a template problem; its path is templates.<id>.<part>.
type renderError struct {
	path string
	err  error
}

func (e *renderError) Error() string { return e.path + ": " + e.err.Error() }
func (e *renderError) Unwrap() error { return e.err }

// parseTemplate parses every part; errors are *renderError.
func parseTemplate(id string, t Template) (*Renderer, error) {
	path := "templates." + id
	r := &Renderer{id: id, category: t.CategoryOrDefault()}
	var err error
	if r.subject, err = parseText(id+".subject", t.Subject); err != nil {
		return nil, &renderError{path + ".subject", err}
	}
	if r.text, err = parseText(id+".text", t.Text); err != nil {
		return nil, &renderError{path + ".text", err}
	}
	if t.HTML != "" {
		if r.html, err = htmltemplate.New(id + ".html").Option("missingkey=error").Parse(t.HTML); err != nil {
			return nil, &renderError{path + ".html", err}
		}
	}
	return r, nil
}

func parseText(name, src string) (*texttemplate.Template, error) {
	if src == "" {
		return nil, nil
	}
	return texttemplate.New(name).Option("missingkey=error").Parse(src)
}

// execute renders the parts; errors are *renderError.
func (r *Renderer) execute(data TemplateData) (Rendered, error) {
	path := "templates." + r.id
	out := Rendered{Category: r.category}
	var b bytes.Buffer
	if r.subject != nil {
		if err := r.subject.Execute(&b, data); err != nil {
			return Rendered{}, &renderError{path + ".subject", err}
		}
		out.Subject = strings.TrimSpace(b.String())
	}
	if strings.ContainsAny(out.Subject, "\r\n") {
		return Rendered{}, &renderError{path + ".subject", fmt.Errorf("rendered subject contains a line break: %q", out.Subject)}
	}
	if r.text != nil {
		b.Reset()
		if err := r.text.Execute(&b, data); err != nil {
			return Rendered{}, &renderError{path + ".text", err}
		}
		out.Text = b.String()
	}
	if r.html != nil {
		b.Reset()
		if err := r.html.Execute(&b, data); err != nil {
			return Rendered{}, &renderError{path + ".html", err}
		}
		out.HTML = b.String()
	}
	return out, nil
}

// renderTemplate parses and renders once (validation); errors are
// *renderError.
func renderTemplate(id string, t Template, data TemplateData) (Rendered, error) {
	r, err := parseTemplate(id, t)
	if err != nil {
		return Rendered{}, err
	}
	return r.execute(data)
}
