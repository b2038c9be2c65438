package broadcast

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/campaign"
)

// The cached renderer renders exactly what campaign.Render renders.
func TestRendererMatchesCampaignRender(t *testing.T) {
	reg := campaign.NewRegistry()
	require.NoError(t, reg.LoadEmbedded())
	for _, id := range reg.IDs() {
		for _, v := range reg.Versions(id) {
			c, err := reg.Get(id, v)
			require.NoError(t, err)
			for name := range c.Templates {
				data := campaign.SampleTemplateData(c)
				want, err := c.Render(name, data)
				require.NoError(t, err, name)
				r, err := newRenderer(c, name)
				require.NoError(t, err, name)
				got, err := r.render(data)
				require.NoError(t, err, name)
				require.Equal(t, want, got, name)

				// Without the product and the extras, too: same output or
				// the same error.
				data.Product, data.Extra = "", nil
				want, wantErr := c.Render(name, data)
				got, gotErr := r.render(data)
				require.Equal(t, want, got, name)
				if wantErr != nil {
					require.EqualError(t, gotErr, wantErr.Error(), name)
				} else {
					require.NoError(t, gotErr, name)
				}
			}
		}
	}
}

func TestRendererErrorsNameTheTemplateAndPart(t *testing.T) {
	c := &campaign.Campaign{ID: "x", Version: "v2", Templates: map[string]campaign.Template{
		"bad":   {Subject: "Hi {{.FirstName", Text: "t"},
		"multi": {Subject: "a{{.Extra.Line}}", Text: "t"},
	}}
	_, err := newRenderer(c, "bad")
	require.ErrorContains(t, err, "x@v2: templates.bad.subject:")
	_, err = newRenderer(c, "nope")
	require.ErrorContains(t, err, `template "nope" not found`)
	r, err := newRenderer(c, "multi")
	require.NoError(t, err)
	_, err = r.render(campaign.TemplateData{Extra: map[string]string{"Line": "1\n2"}})
	require.ErrorContains(t, err, "x@v2: templates.multi.subject: rendered subject contains a line break")
}
