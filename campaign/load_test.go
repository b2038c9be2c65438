package campaign

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDecodeErrors(t *testing.T) {
	cases := []struct {
		file string
		want []string
	}{
		{"unknown_field.yaml", []string{`testdata/unknown_field.yaml: line 6: unknown field "tresholt" in scoring (did you mean "threshold"?)`}},
		{"bad_duration.yaml", []string{`testdata/bad_duration.yaml: line 8: trial.length: invalid duration "3x": unknown unit "x"`}},
		{"bad_clock.yaml", []string{`testdata/bad_clock.yaml: line 5: sending.quiet_hours.start: invalid time of day "25:00"`}},
		{"bad_type.yaml", []string{`testdata/bad_type.yaml: line 4: scoring.threshold: expected a whole number, got text`}},
		{"duplicate_key.yaml", []string{`testdata/duplicate_key.yaml: line 3:`, `"id" already defined`}},
		{"two_docs.yaml", []string{`testdata/two_docs.yaml: line 3: 2 YAML documents; a file holds one campaign version`}},
		{"syntax.yaml", []string{`testdata/syntax.yaml: line `}},
		{"empty.yaml", []string{`testdata/empty.yaml: file is empty`}},
		{"comments_only.yaml", []string{`testdata/comments_only.yaml: file holds no campaign`}},
		{"not_a_mapping.yaml", []string{`testdata/not_a_mapping.yaml: line 1: `}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c, err := LoadFile(filepath.Join("testdata", tc.file))
			require.Error(t, err)
			assert.Nil(t, c)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			var de *DecodeError
			assert.True(t, errors.As(err, &de), "a *DecodeError")
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestParseUnknownFieldTopLevelAndNested(t *testing.T) {
	base, err := os.ReadFile("testdata/valid.yaml")
	require.NoError(t, err)

	_, err = Parse(append([]byte("prodcut: X\n"), base...), "a.yaml")
	require.Error(t, err)
	assert.Equal(t, `a.yaml: line 1: unknown field "prodcut" (did you mean "product"?)`, err.Error())

	src := strings.Replace(string(base), "    - {id: welcome, offset: 0, template: hello}", "    - {id: welcome, ofset: 0, template: hello}", 1)
	_, err = Parse([]byte(src), "b.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `b.yaml: line 21: unknown field "ofset" in trial.steps[0] (did you mean "offset"?)`)
}

func TestParseValidationErrors(t *testing.T) {
	c, err := LoadFile("testdata/invalid.yaml")
	require.Error(t, err)
	assert.Nil(t, c)
	msgs := joined(err)
	require.Len(t, msgs, 3, err.Error())
	assert.Equal(t, `testdata/invalid.yaml: scoring.threshold: must be > 0 (got 0) (line 10)`, msgs[0])
	assert.Contains(t, msgs[1], `testdata/invalid.yaml: active.holidays[0].cron: holiday "new_year": invalid cron expression "0 9 32 1 *": end of range (32) above maximum (31)`)
	assert.Contains(t, msgs[1], "(line 48)")
	assert.Contains(t, msgs[2], `testdata/invalid.yaml: templates.hello.html: template: hello.html:1:`)
	assert.Contains(t, msgs[2], `can't evaluate field Nope`)
	assert.Contains(t, msgs[2], "(line 67)")

	var fe *FieldError
	require.True(t, errors.As(err, &fe))
	assert.Equal(t, "testdata/invalid.yaml", fe.Source)
	assert.Equal(t, "scoring.threshold", fe.Path)
	assert.Equal(t, 10, fe.Line)
}

func TestLoadFile(t *testing.T) {
	c, err := LoadFile("testdata/valid.yaml")
	require.NoError(t, err)
	assert.Equal(t, "demo", c.ID)
	assert.Equal(t, "testdata/valid.yaml", c.Source)

	_, err = LoadFile("testdata/does-not-exist.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does-not-exist.yaml")
}

func TestValidateWithoutSource(t *testing.T) {
	c := validBase(t)
	c.Source = ""
	c.Scoring.Threshold = -1
	err := c.Validate()
	require.Error(t, err)
	assert.Equal(t, "scoring.threshold: must be > 0 (got -1)", err.Error())
}

// Decoding problems in an otherwise valid file: each names line, field and why.
func TestParseDecodeErrorsInline(t *testing.T) {
	base, err := os.ReadFile("testdata/valid.yaml")
	require.NoError(t, err)
	cases := []struct{ from, to, want string }{
		{`    subject: "Hello {{.FirstName}}"`, `    subjct: "Hello {{.FirstName}}"`,
			`f.yaml: line 65: unknown field "subjct" in templates.hello (did you mean "subject"?)`},
		{`  quiet_hours: {start: "21:00", end: "08:00"}`, `  quiet_hours: {start: "21:00", ende: "08:00"}`,
			`f.yaml: line 7: unknown field "ende" in sending.quiet_hours (did you mean "end"?)`},
		{`  activity_events: [login]`, `  activity_events: login`,
			`f.yaml: line 46: active.activity_events: expected a list, got text`},
		{`  threshold: 50`, `  threshold: 50.5`,
			`f.yaml: line 10: scoring.threshold: expected a whole number, got 50.5`},
		{`  threshold: 50`, `  threshold: [50]`,
			`f.yaml: line 10: scoring.threshold: expected a whole number, got a list`},
		{`  sla: 24h`, `  sla: 24`,
			`f.yaml: line 35: sales.sla: invalid duration "24": missing unit after 24`},
		{`  sla: 24h`, `  sla: {h: 24}`,
			`f.yaml: line 35: sales.sla: expected a duration like "3d", "36h" or "90m", got a mapping`},
		{`      variants: {late: offer}`, `      variants: [offer]`,
			`f.yaml: line 31: nurture.steps[0].variants: expected a mapping (key: value lines), got a list`},
		{`  max_attempts: 1`, `  max_attempts: 99999999999999999999999`,
			`f.yaml: line 61: churned.max_attempts: number 99999999999999999999999 is too large`},
		{`templates:`, "templates:\n  hello:\n    subject: x\n    text: y",
			`f.yaml: line 67: mapping key "hello" already defined at line 64`},
		{`    - {id: welcome, offset: 0, template: hello}`, `    - {id: welcome, offset: 0, template: hello`,
			`f.yaml: line 22: `},
	}
	for _, tc := range cases {
		src := strings.Replace(string(base), tc.from, tc.to, 1)
		require.NotEqual(t, string(base), src, tc.from)
		_, err := Parse([]byte(src), "f.yaml")
		if assert.Error(t, err, tc.to) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}
