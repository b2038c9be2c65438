package campaign

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
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
)

// Rendered is an email ready to send.
type Rendered struct {
	Subject, Text, HTML string
	Category            Category
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
		Product: product, Stage: string(StageNurture), Score: 42, UnsubscribeURL: SampleUnsubscribeURL,
		Extra: map[string]string{
			ExtraCustomerID:    "cus_sample",
			ExtraCustomerName:  "Jane Doe (Example Corp)",
			ExtraCustomerEmail: "jane.doe@example.com",
			ExtraReasons:       "demo_requested (30), pricing_viewed (10), webinar_attended (8)",
			ExtraScore:         "62",
			ExtraReferralCode:  "JANE-7Q2X",
		},
	}
}

// CategoryOrDefault returns the template's category: Marketing when empty.
func (t Template) CategoryOrDefault() Category {
	if t.Category == "" {
		return Marketing
	}
	return t.Category
}

// Render renders a template of the campaign. data.Product defaults to the
// campaign's product. Errors name the campaign (id@version), the template
// and the part, e.g. `saas-lifecycle@v1: templates.welcome.html: template:
// welcome.html:3:9: executing ...`. The subject is trimmed and must not
// contain a line break.
func (c *Campaign) Render(templateID string, data TemplateData) (Rendered, error) {
	if c == nil {
		return Rendered{}, fmt.Errorf("render %q: no campaign", templateID)
	}
	t, ok := c.Templates[templateID]
	if !ok {
		return Rendered{}, fmt.Errorf("%s: template %q not found", c.Key(), templateID)
	}
	if data.Product == "" {
		data.Product = c.Product
	}
	r, err := renderTemplate(templateID, t, data)
	if err != nil {
		return Rendered{}, fmt.Errorf("%s: %w", c.Key(), err)
	}
	return r, nil
}

// Key is "id@version", how journeys and errors name a campaign version.
func (c *Campaign) Key() string { return c.ID + "@" + c.Version }

// renderError is a template problem; its path is templates.<id>.<part>.
type renderError struct {
	path string
	err  error
}

func (e *renderError) Error() string { return e.path + ": " + e.err.Error() }
func (e *renderError) Unwrap() error { return e.err }

func renderTemplate(id string, t Template, data TemplateData) (Rendered, error) {
	path := "templates." + id
	out := Rendered{Category: t.CategoryOrDefault()}
	var err error
	if out.Subject, err = execText(id+".subject", t.Subject, data); err != nil {
		return Rendered{}, &renderError{path + ".subject", err}
	}
	out.Subject = strings.TrimSpace(out.Subject)
	if strings.ContainsAny(out.Subject, "\r\n") {
		return Rendered{}, &renderError{path + ".subject", fmt.Errorf("rendered subject contains a line break: %q", out.Subject)}
	}
	if out.Text, err = execText(id+".text", t.Text, data); err != nil {
		return Rendered{}, &renderError{path + ".text", err}
	}
	if out.HTML, err = execHTML(id+".html", t.HTML, data); err != nil {
		return Rendered{}, &renderError{path + ".html", err}
	}
	return out, nil
}

func execText(name, src string, data TemplateData) (string, error) {
	if src == "" {
		return "", nil
	}
	tpl, err := texttemplate.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func execHTML(name, src string, data TemplateData) (string, error) {
	if src == "" {
		return "", nil
	}
	tpl, err := htmltemplate.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}
