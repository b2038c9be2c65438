package campaign

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDiffOfTheSameCampaignIsEmpty(t *testing.T) {
	a, b := validBase(t), validBase(t)
	b.Version, b.Description, b.Source = "v99", "another description", "elsewhere.yaml"
	assert.Empty(t, Diff(a, b), "versions, descriptions and sources aside")
}

func TestDiffNamesEachChangedField(t *testing.T) {
	a, b := validBase(t), validBase(t)
	b.Scoring.Threshold = a.Scoring.Threshold - 5
	b.Trial.Steps[0].Offset += Duration(24 * 60 * 60 * 1e9)
	tpl := b.Templates["hello"]
	tpl.Text += "\nP.S. one more line"
	b.Templates["hello"] = tpl
	delete(b.Scoring.EventPoints, "email_clicked")

	changes := Diff(a, b)
	assert.Contains(t, changes, "scoring.threshold: 50 → 45")
	assert.Contains(t, changes, "trial.steps[welcome].offset: 0 → 1d")
	assert.Contains(t, changes, "changed templates.hello.text", "a multi-line value is named, not printed")
	assert.Contains(t, changes, "removed scoring.event_points.email_clicked")
	assert.Len(t, changes, 4, "nothing else: %q", changes)
}

func TestDiffShowsAnInsertedStepOnce(t *testing.T) {
	a, b := validBase(t), validBase(t)
	b.Trial.Steps = append([]Step{{ID: "early", Offset: 0, Template: "hello"}}, b.Trial.Steps...)

	changes := Diff(a, b)
	assert.Contains(t, changes, "added trial.steps[early]")
	for _, c := range changes {
		assert.NotContains(t, c, "trial.steps[early].", "what is under an added step is not listed again")
	}
	assert.Contains(t, changes, "trial.steps[welcome].position: 1 → 2", "later steps keep their id and move")
}
