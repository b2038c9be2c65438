package campaign

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/customer"
)

func TestCompareVersions(t *testing.T) {
	less := [][2]string{
		{"v9", "v10"},
		{"v1", "v2"},
		{"2026-02-01", "2026-11-01"},
		{"2025-12-31", "2026-01-01"},
		{"1.9", "1.10"},
		{"1.2.3", "1.10.0"},
		{"v1", "v1.1"},
		{"v2", "v2-rc1"}, // no pre-release rules: a longer version sorts later
		{"a", "b"},
		{"1", "a"},    // digits before text
		{"v01", "v1"}, // numerically equal: plain string order decides
		{"99999999999999999999", "100000000000000000000"},
	}
	for _, p := range less {
		assert.Equal(t, -1, CompareVersions(p[0], p[1]), "%s < %s", p[0], p[1])
		assert.Equal(t, 1, CompareVersions(p[1], p[0]), "%s > %s", p[1], p[0])
	}
	for _, v := range []string{"v1", "2026-11-01", "", "1.2.3"} {
		assert.Equal(t, 0, CompareVersions(v, v))
	}
	vs := []string{"v10", "v2", "v1", "v9", "v1.1", "v11"}
	sort.Slice(vs, func(i, j int) bool { return CompareVersions(vs[i], vs[j]) < 0 })
	assert.Equal(t, []string{"v1", "v1.1", "v2", "v9", "v10", "v11"}, vs)
}

func TestRegistryLoadDir(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.LoadDir("testdata/registry/ok"))
	assert.Equal(t, []string{"demo", "other"}, r.IDs())
	assert.Equal(t, []string{"v1", "v2", "v10"}, r.Versions("demo"))

	latest, err := r.Latest("demo")
	require.NoError(t, err)
	assert.Equal(t, "v10", latest.Version)
	assert.Equal(t, filepath.Join("testdata/registry/ok", "demo-v10.yml"), latest.Source)

	c, err := r.Get("demo", "v2")
	require.NoError(t, err)
	assert.Equal(t, "v2", c.Version)

	_, err = r.Get("demo", "v3")
	require.Error(t, err)
	assert.Equal(t, `campaign "demo" version "v3" not found (known versions: v1, v2, v10)`, err.Error())
	_, err = r.Get("nope", "v1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `campaign "nope" version "v1" not found: no such campaign (known: demo, other)`)
	_, err = r.Latest("nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `campaign "nope" not found`)

	// Loading the same files again is harmless.
	require.NoError(t, r.LoadDir("testdata/registry/ok"))
	assert.Equal(t, []string{"v1", "v2", "v10"}, r.Versions("demo"))
}

func TestRegistryLoadDirAllOrNothing(t *testing.T) {
	r := NewRegistry()
	err := r.LoadDir("testdata/registry/bad")
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join("testdata/registry/bad", "b-broken.yaml")+`: line 8: trial.length: invalid duration "3x"`)
	assert.NotContains(t, err.Error(), "a-good.yaml")
	assert.Empty(t, r.IDs(), "nothing half-loaded")

	_, err = r.Get("demo", "v3")
	assert.Error(t, err)

	err = r.LoadDir("testdata/does-not-exist")
	assert.Error(t, err)
	err = r.LoadDir(t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no *.yaml or *.yml files")
}

func TestRegistryConflicts(t *testing.T) {
	r := NewRegistry()
	base := validBase(t)
	require.NoError(t, r.Add(base))
	require.NoError(t, r.Add(validBase(t)), "same content again is fine")

	changed := validBase(t)
	changed.Scoring.Threshold = 99
	err := r.Add(changed)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "campaign demo@v1 is already defined with different content")
	got, _ := r.Get("demo", "v1")
	assert.Equal(t, 50, got.Scoring.Threshold, "the published version is kept")

	// A directory that redefines a held version with other content loads nothing.
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/valid.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(string(data)+"description: edited\n"), 0o644))
	v5 := []byte(strings.Replace(string(data), "version: v1", "version: v5", 1))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yaml"), v5, 0o644))
	err = r.LoadDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a.yaml: campaign demo@v1 is already defined with different content (in testdata/valid.yaml)")
	assert.Equal(t, []string{"v1"}, r.Versions("demo"))

	// Two files in one directory defining the same version differently.
	dir = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), v5, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yml"), []byte(string(v5)+"description: other\n"), 0o644))
	err = r.LoadDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "b.yml: campaign demo@v5 is already defined")
	assert.Equal(t, []string{"v1"}, r.Versions("demo"))

	// Invalid campaigns are refused.
	bad := validBase(t)
	bad.Version = "v6"
	bad.Sales.SLA = 0
	err = r.Add(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sales.sla: must be > 0")
	assert.Error(t, r.Add(nil))
}

func TestRegistryEmbedded(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.LoadEmbedded())
	assert.Contains(t, r.IDs(), "saas-lifecycle")
	c, err := r.Latest("saas-lifecycle")
	require.NoError(t, err)
	assert.Equal(t, "v1", c.Version)
	assert.Equal(t, "embedded:campaigns/saas-lifecycle.yaml", c.Source)
	require.NoError(t, c.Validate())

	entries, err := os.ReadDir("campaigns")
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".yaml" {
			n++
			// The files on disk load the same way.
			fc, err := LoadFile(filepath.Join("campaigns", e.Name()))
			require.NoError(t, err)
			ec, err := r.Get(fc.ID, fc.Version)
			require.NoError(t, err)
			assert.True(t, SameContent(fc, ec))
		}
	}
	assert.Positive(t, n)

	// Loading them from disk into the same registry is not a conflict.
	require.NoError(t, r.LoadDir("campaigns"))
}

// The shipped campaign covers every stage docs/product.md describes.
func TestEmbeddedSaaSContent(t *testing.T) {
	c := embeddedSaaS(t)
	assert.Equal(t, "Acme Analytics", c.Product)
	assert.Equal(t, "UTC", c.DefaultTimeZone)
	assert.Equal(t, &QuietHours{Start: ClockTime{21, 0}, End: ClockTime{8, 0}}, c.Sending.QuietHours)
	assert.Equal(t, &FrequencyCap{Max: 3, Window: Duration(7 * day), OverCap: "delay"}, c.Sending.FrequencyCap)
	assert.Equal(t, 60, c.Scoring.Threshold)
	assert.Equal(t, map[string]int{"current_customer": 30, "referral": 25, "connected": 15, "expert": 10, "search_ads": 5, "cold": 0}, c.Scoring.SourcePoints)
	assert.Equal(t, 30, c.Scoring.EventPoints["demo_requested"])
	assert.Equal(t, Decay{Points: 5, Every: Duration(7 * day)}, c.Scoring.Decay)
	assert.Equal(t, Duration(3*day), c.Trial.Length)
	assert.Equal(t, []string{"awareness", "consideration", "decision"}, []string{c.Nurture.Bands[0].Name, c.Nurture.Bands[1].Name, c.Nurture.Bands[2].Name})
	assert.Equal(t, []int{0, 25, 45}, []int{c.Nurture.Bands[0].MinScore, c.Nurture.Bands[1].MinScore, c.Nurture.Bands[2].MinScore})
	var offsets []string
	for _, st := range c.Nurture.Steps {
		offsets = append(offsets, st.Offset.String())
	}
	assert.Equal(t, []string{"0", "4d", "9d", "16d", "25d"}, offsets)
	assert.Equal(t, Duration(24*3600e9), c.Sales.SLA)
	assert.Equal(t, customer.CategoryTransactional, c.Templates[c.Sales.NotifyTemplate].Category)
	assert.Equal(t, Duration(31*day), c.Onboarding.Length)
	assert.Equal(t, Duration(30*day), c.Onboarding.Steps[len(c.Onboarding.Steps)-1].Offset)
	assert.Equal(t, "0 9 1 1 *", c.Active.Holidays[0].Cron)
	assert.Len(t, c.Active.Holidays, 3)
	assert.Equal(t, []string{"review_ask", "referral_ask"}, c.Active.Asks)
	assert.Equal(t, Duration(30*day), c.AtRisk.ChurnAfter)
	assert.Equal(t, Churned{Mode: "periodic", Every: Duration(90 * day), MaxAttempts: 2, Template: "churned_winback"}, c.Churned)

	// Content fits the stage: guides and reports early, case studies in
	// consideration, offers at decision time.
	for _, st := range c.Nurture.Steps {
		assert.Regexp(t, `^(guide|report)_`, st.TemplateFor("awareness"), st.ID)
		assert.Regexp(t, `^(case_study|webinar|comparison)_`, st.TemplateFor("consideration"), st.ID)
		assert.Regexp(t, `^offer_`, st.TemplateFor("decision"), st.ID)
	}
}

func TestRegistryConcurrentReads(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.LoadDir("testdata/registry/ok"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if c, err := r.Latest("demo"); err != nil || c.Version != "v10" {
					t.Error("latest", err)
					return
				}
				if _, err := r.Get("other", "v1"); err != nil {
					t.Error(err)
					return
				}
				_ = r.IDs()
			}
		}()
	}
	// A concurrent (idempotent) load does not disturb readers.
	require.NoError(t, r.LoadDir("testdata/registry/ok"))
	wg.Wait()
}
