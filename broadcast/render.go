package broadcast

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/acme/lifecycle/campaign"
)

// renderer renders one template of a campaign for many recipients. It
// parses the template once (campaign.Campaign.Render parses it on every
// call, which is most of the CPU a broadcast page would spend) and renders
// exactly as campaign.Render does: the same template options, the product
// default, the trimmed single-line subject, and errors naming
// id@version, the template and the part. It is safe for concurrent use.
type renderer struct {
	c       *campaign.Campaign
	id      string
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
	cat     campaign.Category
}

func newRenderer(c *campaign.Campaign, id string) (*renderer, error) {
	t, ok := c.Templates[id]
	if !ok {
		return nil, fmt.Errorf("%s: template %q not found", c.Key(), id)
	}
	r := &renderer{c: c, id: id, cat: t.CategoryOrDefault()}
	var err error
	if r.subject, err = parseText(id+".subject", t.Subject); err != nil {
		return nil, r.partError("subject", err)
	}
	if r.text, err = parseText(id+".text", t.Text); err != nil {
		return nil, r.partError("text", err)
	}
	if t.HTML != "" {
		if r.html, err = htmltemplate.New(id + ".html").Option("missingkey=error").Parse(t.HTML); err != nil {
			return nil, r.partError("html", err)
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

func (r *renderer) partError(part string, err error) error {
	return fmt.Errorf("%s: templates.%s.%s: %w", r.c.Key(), r.id, part, err)
}

func (r *renderer) render(data campaign.TemplateData) (campaign.Rendered, error) {
	if data.Product == "" {
		data.Product = r.c.Product
	}
	out := campaign.Rendered{Category: r.cat}
	var b bytes.Buffer
	var err error
	if r.subject != nil {
		b.Reset()
		if err = r.subject.Execute(&b, data); err != nil {
			return campaign.Rendered{}, r.partError("subject", err)
		}
		out.Subject = strings.TrimSpace(b.String())
	}
	if strings.ContainsAny(out.Subject, "\r\n") {
		return campaign.Rendered{}, r.partError("subject", fmt.Errorf("rendered subject contains a line break: %q", out.Subject))
	}
	if r.text != nil {
		b.Reset()
		if err = r.text.Execute(&b, data); err != nil {
			return campaign.Rendered{}, r.partError("text", err)
		}
		out.Text = b.String()
	}
	if r.html != nil {
		b.Reset()
		if err = r.html.Execute(&b, data); err != nil {
			return campaign.Rendered{}, r.partError("html", err)
		}
		out.HTML = b.String()
	}
	return out, nil
}
