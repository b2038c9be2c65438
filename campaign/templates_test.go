package campaign

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/customer"
)

// Every embedded template renders with sample data, for the customer (with
// and without a first name and Extra) and, for notices, with the keys the
// journey fills.
func TestRenderEveryEmbeddedTemplate(t *testing.T) {
	c := embeddedSaaS(t)
	require.NotEmpty(t, c.Templates)
	for _, id := range sortedKeys(c.Templates) {
		t.Run(id, func(t *testing.T) {
			data := SampleTemplateData(c)
			data.Product = "" // filled from the campaign
			r, err := c.Render(id, data)
			require.NoError(t, err)
			assert.NotEmpty(t, r.Subject)
			assert.NotContains(t, r.Subject, "\n")
			assert.NotContains(t, r.Subject, "<no value>")
			assert.NotEmpty(t, r.Text)
			assert.NotEmpty(t, r.HTML)
			for _, part := range []string{r.Subject, r.Text, r.HTML} {
				assert.NotContains(t, part, "<no value>")
				assert.NotContains(t, part, "{{")
			}
			assert.Equal(t, c.Templates[id].CategoryOrDefault(), r.Category)
			if r.Category == customer.CategoryMarketing {
				assert.Contains(t, r.Text, SampleUnsubscribeURL)
				assert.Contains(t, r.HTML, `href="`+SampleUnsubscribeURL+`"`)
				assert.Contains(t, r.Text, "Jane")
				assert.Contains(t, r.Subject+r.Text, "Acme Analytics")

				// Customer emails get no Extra from the journey and may lack a name.
				bare := TemplateData{Email: "x@example.com", UnsubscribeURL: "https://u.example/x"}
				r2, err := c.Render(id, bare)
				require.NoError(t, err)
				assert.NotContains(t, r2.Text, "<no value>")
				assert.NotContains(t, r2.Subject, ", !")
				assert.Contains(t, r2.Text, "Hi there,")
			} else {
				// Transactional: no unsubscribe link; a notice to an owner
				// names the customer it is about.
				assert.NotContains(t, r.Text, SampleUnsubscribeURL)
				if slices.Contains([]string{c.Sales.NotifyTemplate, c.Sales.EscalationTemplate, c.AtRisk.AlertTemplate, c.Advocacy.Detractor.NotifyTemplate}, id) {
					assert.Contains(t, r.Text, "cus_sample")
				}
			}
		})
	}
}

func TestEmbeddedTemplatesAreAllUsed(t *testing.T) {
	c := embeddedSaaS(t)
	used := map[string]bool{}
	for _, seq := range [][]Step{c.Trial.Steps, c.Nurture.Steps, c.Onboarding.Steps, c.AtRisk.WinBack} {
		for _, st := range seq {
			used[st.Template] = true
			for _, v := range st.Variants {
				used[v] = true
			}
		}
	}
	for _, h := range c.Active.Holidays {
		used[h.Template] = true
	}
	for _, a := range c.Active.Asks {
		used[a] = true
	}
	used[c.Sales.NotifyTemplate] = true
	used[c.Sales.EscalationTemplate] = true
	used[c.AtRisk.AlertTemplate] = true
	used[c.Churned.Template] = true
	used[c.Advocacy.Detractor.NotifyTemplate] = true
	for _, r := range c.Reminders {
		used[r.Template] = true
	}
	for id := range c.Templates {
		assert.True(t, used[id], "template %s is never sent", id)
	}
}

func TestRenderDetails(t *testing.T) {
	c := validBase(t)
	data := TemplateData{FirstName: "<b>Jo</b>", UnsubscribeURL: "https://u.example/x?a=1&b=2"}
	r, err := c.Render("hello", data)
	require.NoError(t, err)
	assert.Equal(t, "Hello <b>Jo</b>", r.Subject, "text/template: no escaping")
	assert.Equal(t, "Hi <b>Jo</b>, welcome to Demo App. Unsubscribe: https://u.example/x?a=1&b=2", r.Text)
	assert.Contains(t, r.HTML, "<p>Hi &lt;b&gt;Jo&lt;/b&gt;</p>", "html/template escapes")
	assert.Contains(t, r.HTML, `href="https://u.example/x?a=1&amp;b=2"`)
	assert.Equal(t, customer.CategoryMarketing, r.Category)

	// An explicit product wins over the campaign's.
	data.Product = "Other"
	r, err = c.Render("hello", data)
	require.NoError(t, err)
	assert.Contains(t, r.Text, "welcome to Other")

	r, err = c.Render("notice", SampleTemplateData(c))
	require.NoError(t, err)
	assert.Equal(t, customer.CategoryTransactional, r.Category)
	assert.Empty(t, r.HTML)
}

func TestRenderErrors(t *testing.T) {
	c := validBase(t)
	_, err := c.Render("nope", TemplateData{})
	require.Error(t, err)
	assert.Equal(t, `demo@v1: template "nope" not found`, err.Error())

	// Header injection through data is refused.
	_, err = c.Render("hello", TemplateData{FirstName: "Jo\r\nBcc: victim@example.com"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "demo@v1: templates.hello.subject: rendered subject contains a line break")

	// A notice without the Extra keys it uses fails, naming template and part.
	_, err = c.Render("notice", TemplateData{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `demo@v1: templates.notice.subject: template: notice.subject:1:`)
	assert.Contains(t, err.Error(), `map has no entry for key "CustomerName"`)

	c.Templates["broken"] = Template{Subject: "x", Text: "x", HTML: "<p>{{.Missing}}</p>"}
	_, err = c.Render("broken", TemplateData{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "demo@v1: templates.broken.html: template: broken.html:1:")

	var nilC *Campaign
	_, err = nilC.Render("x", TemplateData{})
	assert.Error(t, err)
}

func TestRenderConcurrent(t *testing.T) {
	c := embeddedSaaS(t)
	ids := sortedKeys(c.Templates)
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(ids))
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range ids {
				d := SampleTemplateData(c)
				d.FirstName = fmt.Sprint("User", i)
				r, err := c.Render(id, d)
				if err != nil {
					errs <- err
					continue
				}
				if r.Category == customer.CategoryMarketing && !strings.Contains(r.Text, d.FirstName) {
					errs <- fmt.Errorf("%s: wrong data", id)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
