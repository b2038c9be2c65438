package campaign

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	ok := []struct {
		in   string
		want time.Duration
	}{
		{"90m", 90 * time.Minute},
		{"36h", 36 * time.Hour},
		{"3d", 72 * time.Hour},
		{"2w", 336 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"0", 0},
		{" 7d ", 7 * 24 * time.Hour},
		{"1w2d", 9 * 24 * time.Hour},
		{"1.5h", 90 * time.Minute},
		{"0.5d", 12 * time.Hour},
		{"45s", 45 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"-1d", -24 * time.Hour},
		{"+2h", 2 * time.Hour},
		{"0d", 0},
	}
	for _, tc := range ok {
		got, err := ParseDuration(tc.in)
		if assert.NoError(t, err, tc.in) {
			assert.Equal(t, tc.want, got, tc.in)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty duration"},
		{"5", `missing unit after 5`},
		{"3x", `unknown unit "x"`},
		{"d", "expected a number"},
		{"1d12", "missing unit after 12"},
		{"three days", "expected a number"},
		{"1..5h", "invalid duration"},
		{"-", "invalid duration"},
		{"99999999w", "invalid duration"},
		{"200000d200000d", "invalid duration"},
	}
	for _, tc := range bad {
		_, err := ParseDuration(tc.in)
		if assert.Error(t, err, tc.in) {
			assert.Contains(t, err.Error(), tc.msg, tc.in)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	cases := []struct {
		in   time.Duration
		want string
	}{
		{0, "0"},
		{72 * time.Hour, "3d"},
		{36 * time.Hour, "36h"},
		{90 * time.Minute, "90m"},
		{14 * 24 * time.Hour, "14d"},
		{45 * time.Second, "45s"},
		{1500 * time.Millisecond, "1.5s"},
		{-24 * time.Hour, "-1d"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, FormatDuration(tc.in))
		assert.Equal(t, tc.want, Duration(tc.in).String())
	}
	// Whatever FormatDuration writes parses back to the same duration.
	for _, d := range []time.Duration{1, time.Microsecond, 1234567 * time.Nanosecond, 25 * time.Hour,
		30*24*time.Hour + time.Minute, 3 * 7 * 24 * time.Hour, -90 * time.Minute, 1<<62 + 1} {
		back, err := ParseDuration(FormatDuration(d))
		require.NoError(t, err, FormatDuration(d))
		assert.Equal(t, d, back, FormatDuration(d))
	}
}

func TestParseClockTime(t *testing.T) {
	for in, want := range map[string]ClockTime{
		"21:00": {21, 0}, "08:00": {8, 0}, "8:05": {8, 5}, "00:00": {0, 0}, "23:59": {23, 59},
	} {
		got, err := ParseClockTime(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "24:00", "12:60", "1200", "12:5", "ab:cd", "-1:00", "123:00", "12:00:00"} {
		_, err := ParseClockTime(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, "21:00", ClockTime{21, 0}.String())
	assert.Equal(t, "08:05", ClockTime{8, 5}.String())
}

type yamlTimes struct {
	D  Duration   `yaml:"d"`
	C  ClockTime  `yaml:"c"`
	DS []Duration `yaml:"ds"`
}

func TestYAMLDurationAndClock(t *testing.T) {
	var v yamlTimes
	src := "d: 1d12h\nc: \"21:30\"\nds: [0, 90m, \"3d\", 2w]\n"
	require.NoError(t, yaml.Unmarshal([]byte(src), &v))
	assert.Equal(t, Duration(36*time.Hour), v.D)
	assert.Equal(t, ClockTime{21, 30}, v.C)
	assert.Equal(t, []Duration{0, Duration(90 * time.Minute), Duration(72 * time.Hour), Duration(336 * time.Hour)}, v.DS)

	// Unquoted HH:MM is a string in YAML 1.2.
	require.NoError(t, yaml.Unmarshal([]byte("c: 08:00\n"), &v))
	assert.Equal(t, ClockTime{8, 0}, v.C)

	for src, msg := range map[string]string{
		"d: 5\n":        "missing unit",
		"d: [1d]\n":     "expected a duration",
		"d: {a: 1}\n":   "expected a duration",
		"c: 25:00\n":    "must be between 00:00 and 23:59",
		"c: 9\n":        "want HH:MM",
		"ds: [1d, x]\n": `invalid duration "x"`,
	} {
		err := yaml.Unmarshal([]byte(src), &v)
		if assert.Error(t, err, src) {
			assert.Contains(t, err.Error(), msg, src)
		}
	}

	out, err := yaml.Marshal(yamlTimes{D: Duration(72 * time.Hour), C: ClockTime{7, 5}, DS: []Duration{Duration(90 * time.Minute)}})
	require.NoError(t, err)
	assert.Contains(t, string(out), "d: 3d")
	assert.Contains(t, string(out), `c: "07:05"`)
	var back yamlTimes
	require.NoError(t, yaml.Unmarshal(out, &back))
	assert.Equal(t, Duration(72*time.Hour), back.D)
	assert.Equal(t, ClockTime{7, 5}, back.C)
}

// The campaign travels through Temporal payloads as JSON: Duration stays
// int64 nanoseconds and ClockTime {"Hour":..,"Minute":..}.
func TestJSONRoundTrip(t *testing.T) {
	c := embeddedSaaS(t)
	data, err := json.Marshal(c)
	require.NoError(t, err)
	s := string(data)
	assert.Contains(t, s, `"quiet_hours":{"start":{"Hour":21,"Minute":0},"end":{"Hour":8,"Minute":0}}`)
	assert.Contains(t, s, `"window":604800000000000`)
	assert.Contains(t, s, `"length":259200000000000`)
	assert.Contains(t, s, `"sla":86400000000000`)

	var back Campaign
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, c, &back)
	require.NoError(t, back.Validate())

	d, err := json.Marshal(Duration(90 * time.Minute))
	require.NoError(t, err)
	assert.Equal(t, "5400000000000", string(d))
}

func TestYAMLRoundTrip(t *testing.T) {
	for _, c := range []*Campaign{embeddedSaaS(t), validBase(t)} {
		data, err := yaml.Marshal(c)
		require.NoError(t, err)
		assert.NotContains(t, string(data), "\nsource:", "Source is not part of the YAML")
		back, err := Parse(data, c.Source)
		require.NoError(t, err)
		assert.Equal(t, c, back)
		assert.True(t, strings.Contains(string(data), "window: 7d"), "durations are written the way marketers write them")
	}
}
