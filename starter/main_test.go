package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/workflows"
)

// cli runs starter with args and returns the exit code and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// hermetic points starter at nothing real: no campaign directory, and a
// Temporal and database that refuse connections, so a test that reaches
// them by mistake fails fast instead of touching the stack.
func hermetic(t *testing.T) {
	t.Setenv("CAMPAIGN_DIR", "")
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
}

// Wrong command lines exit 2 with a message that says what to write,
// without connecting to anything.
func TestArgumentErrors(t *testing.T) {
	hermetic(t)
	jane := "../simulate/testdata/jane.yaml"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"simulate", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"simulate"}, "--script is required"},
		{[]string{"simulate", "extra", "--script", jane}, "takes no arguments"},
		{[]string{"simulate", "--script", "missing.yaml"}, "--script missing.yaml: no such file"},
		{[]string{"simulate", "--script", jane, "--until", "soon"}, "--until:"},
		{[]string{"simulate", "--script", jane, "--until", "0d"}, "--until: must be positive"},
		{[]string{"simulate", "--script", jane, "--campaign-file", "x.yaml", "--campaign", "saas-lifecycle"}, "not both"},
		{[]string{"simulate", "--script", jane, "--campaign-file", "missing.yaml"}, "--campaign-file missing.yaml: no such file"},
		{[]string{"simulate", "--script", jane, "--campaign", "nope"}, `--campaign nope: campaign "nope" not found`},
		{[]string{"report"}, "name a command: starter report funnel"},
		{[]string{"report", "fennel"}, `unknown report command "fennel"`},
		{[]string{"report", "funnel", "--since", "yesterday"}, `--since "yesterday": write a date like 2026-01-01`},
		{[]string{"report", "funnel", "--tag", "Webinar"}, `--tag "Webinar": must be 1-64 characters`},
		{[]string{"schedule"}, "name a command: starter schedule create|list|pause|unpause|delete"},
		{[]string{"schedule", "create"}, "want NAME, got 0 argument(s)"},
		{[]string{"schedule", "create", "weekly"}, "--cron is required"},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * * MOX"}, `--cron "0 9 * * MOX":`},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * *"}, `write five fields`},
		{[]string{"schedule", "create", "weekly", "--cron", "CRON_TZ=Europe/Berlin 0 9 * * MON"}, "give the time zone with --time-zone"},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * * MON", "--time-zone", "Mars/Olympus"}, `--time-zone "Mars/Olympus"`},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * * MON"}, "--template is required"},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * * MON", "--template", "review_ask"}, "say who gets it: --segment-stage active"},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * * MON", "--template", "review_ask", "--segment-stage", "activ"}, `--segment-stage: "activ" is not one of`},
		{[]string{"schedule", "create", "bad name", "--cron", "0 9 * * MON", "--template", "review_ask", "--segment-stage", "active"}, `NAME: "bad name" must be`},
		{[]string{"schedule", "create", "weekly", "--cron", "0 9 * * MON", "--template", "review_ask", "--segment-tag", "vip,VIP"}, `--segment-tag: "VIP": must be`},
		{[]string{"schedule", "pause"}, "want NAME"},
		{[]string{"schedule", "delete", "a", "b"}, "want NAME, got 2"},
		{[]string{"launch"}, "name a command: starter launch broadcast|campaign"},
		{[]string{"launch", "broadcast"}, "--id is required"},
		{[]string{"launch", "broadcast", "--id", "b1"}, "--template is required"},
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "review_ask"}, "say who gets it: --stage active"},
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "review_ask"}, "--tag TAG (repeatable)"},
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "reveiw_ask", "--stage", "active"}, `no such template (did you mean "review_ask"?)`}, //nolint:misspell // the typo is the input
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "review_ask", "--stage", "active", "--all-contacts"}, "exclude each other"},
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "review_ask", "--tag", "vip", "--all-contacts"}, "exclude each other"},
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "review_ask", "--tag", "has space"}, `--tag: "has space": must be`},
		{[]string{"launch", "broadcast", "--id", "b1", "--template", "review_ask", "--stage", "active", "--rate", "-1"}, "--rate: -1 is negative"},
		{[]string{"launch", "campaign"}, "--file is required"},
		{[]string{"launch", "campaign", "--file", "missing.yaml"}, "--file missing.yaml: no such file"},
		{[]string{"signup"}, "want CUSTOMER_ID"},
		{[]string{"signup", "c1"}, `required flag(s) "email" not set`},
		{[]string{"event", "c1"}, "want CUSTOMER_ID TYPE"},
		{[]string{"status"}, "want CUSTOMER_ID"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := cli(t, tc.args...)
			assert.Equal(t, exitUsage, code, "stderr: %s", stderr)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tc.want)
			assert.Contains(t, stderr, "--help' for usage.")
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	hermetic(t)
	for _, args := range [][]string{
		{"simulate"}, {"report", "funnel"}, {"schedule"}, {"schedule", "create"}, {"schedule", "list"},
		{"schedule", "pause"}, {"schedule", "unpause"}, {"schedule", "delete"}, {"launch", "broadcast"}, {"launch", "campaign"},
		{"signup"}, {"event"}, {"status"}, {"demo"},
	} {
		code, stdout, _ := cli(t, append(args, "--help")...)
		assert.Equal(t, 0, code, args)
		assert.Contains(t, stdout, "Usage:", args)
	}
}

// The CLI prints exactly the timeline of the golden file (the embedded
// campaign is the shipped file).
func TestSimulatePrintsTheGoldenTimeline(t *testing.T) {
	hermetic(t)
	code, stdout, stderr := cli(t, "simulate", "--script", "../simulate/testdata/ben.yaml", "--until", "60d")
	require.Equal(t, 0, code, stderr)
	want, err := os.ReadFile("../simulate/testdata/ben.golden")
	require.NoError(t, err)
	assert.Equal(t, string(want), stdout)
	assert.Contains(t, stderr, "simulating saas-lifecycle@v1 for ben over 60 days")
	assert.Contains(t, stderr, "simulated 60 days in")
}

func TestSimulateJSONFromAFile(t *testing.T) {
	hermetic(t)
	code, stdout, stderr := cli(t, "simulate", "--campaign-file", "../campaign/campaigns/saas-lifecycle.yaml",
		"--script", "../simulate/testdata/jane.yaml", "--until", "1y", "--json")
	require.Equal(t, 0, code, stderr)
	var res struct {
		Campaign string `json:"campaign"`
		Final    struct {
			Stage string `json:"stage"`
		} `json:"final"`
		Timeline []struct {
			Kind, Template, Subject string
		} `json:"timeline"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	assert.Equal(t, "saas-lifecycle@v1", res.Campaign)
	assert.Equal(t, "churned", res.Final.Stage)
	assert.Equal(t, "Welcome to Acme Analytics, Jane - your trial has started", res.Timeline[2].Subject)
}

// A template that cannot render for the customer: the timeline is printed
// with the failure marked, and the command fails saying what to fix.
func TestSimulateBrokenTemplateFails(t *testing.T) {
	hermetic(t)
	src, err := os.ReadFile("../campaign/campaigns/saas-lifecycle.yaml")
	require.NoError(t, err)
	broken := strings.Replace(string(src), `subject: "3 things to try in your first week with {{.Product}}"`,
		`subject: "3 things to try, {{.Extra.CustomerName}}"`, 1)
	require.NotEqual(t, string(src), broken)
	file := filepath.Join(t.TempDir(), "broken.yaml")
	require.NoError(t, os.WriteFile(file, []byte(broken), 0o644))

	code, stdout, stderr := cli(t, "simulate", "--campaign-file", file, "--script", "../simulate/testdata/jane.yaml", "--until", "10d")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stdout, "✗ FAILED activation_tips (step activation-tips): saas-lifecycle@v1: templates.activation_tips.subject")
	assert.Contains(t, stdout, "offer_onboarding_call", "the journey goes on")
	assert.Contains(t, stderr, "1 email(s) of saas-lifecycle@v1: templates failed to render")
	assert.Contains(t, stderr, "fix the template(s) in "+file)
}

func TestSimulateBadScriptNamesLine(t *testing.T) {
	hermetic(t)
	file := filepath.Join(t.TempDir(), "s.yaml")
	require.NoError(t, os.WriteFile(file, []byte("customer:\n  id: a\n  email: a@example.com\nevents:\n  - {day: 1, type: priceing_viewed}\n"), 0o644))
	code, _, stderr := cli(t, "simulate", "--script", file)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, file+`: line 5: events[0].type: unknown event type "priceing_viewed" (did you mean "pricing_viewed"?)`)
}

func TestLaunchCampaignExplainsAndChangesNothing(t *testing.T) {
	hermetic(t)
	src, err := os.ReadFile("../campaign/campaigns/saas-lifecycle.yaml")
	require.NoError(t, err)
	v2 := strings.Replace(strings.Replace(string(src), "\nversion: v1\n", "\nversion: v2\n", 1), "  threshold: 60\n", "  threshold: 55\n", 1)
	v2 = strings.Replace(v2, "{id: activation-tips, offset: 1d,", "{id: activation-tips, offset: 2d,", 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "saas-v2.yaml")
	require.NoError(t, os.WriteFile(file, []byte(v2), 0o644))

	code, stdout, stderr := cli(t, "launch", "campaign", "--file", file)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"campaign saas-lifecycle@v2, valid",
		"Deployed versions of saas-lifecycle: v1",
		"scoring.threshold: 60 → 55",
		"trial.steps[activation-tips].offset: 1d → 2d",
		"new journeys start on v2 at once",
		"running journeys stay on their version until their next stage boundary",
		"(running journeys per version not counted:",
		"this command changed nothing",
		"CAMPAIGN_DIR",
	} {
		assert.Contains(t, stdout, want)
	}

	// The same version with other content is refused: published versions
	// never change.
	v1b := strings.Replace(string(src), "  threshold: 60\n", "  threshold: 61\n", 1)
	require.NoError(t, os.WriteFile(file, []byte(v1b), 0o644))
	code, _, stderr = cli(t, "launch", "campaign", "--file", file)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "version v1 of saas-lifecycle is already deployed")
	assert.Contains(t, stderr, "give this file a new version")

	// An invalid file: says where, changes nothing.
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(v2, "  threshold: 55\n", "  threshold: 0\n", 1)), 0o644))
	code, _, stderr = cli(t, "launch", "campaign", "--file", file)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "is not a valid campaign version; nothing changed")
	assert.Contains(t, stderr, "scoring.threshold: must be > 0")
}

func TestParseSpan(t *testing.T) {
	for in, want := range map[string]float64{"90d": 90, "12w": 84, "1y": 365, "1.5y": 547.5, "36h": 1.5} {
		d, err := parseSpan(in)
		require.NoError(t, err, in)
		assert.InDelta(t, want, d.Hours()/24, 1e-9, in)
	}
	for _, in := range []string{"", "y", "-1y", "soon", "5x"} {
		_, err := parseSpan(in)
		assert.Error(t, err, in)
	}
}

func TestDescribeInputNamesTheSegment(t *testing.T) {
	in := workflows.BroadcastInput{Template: "review_ask", CampaignID: "saas-lifecycle", RatePerSecond: 5}
	in.Segment.Tags = []string{"vip"}
	assert.Equal(t, "template review_ask of saas-lifecycle (latest version when it runs) to contacts with tag vip with marketing consent, at most 5/s",
		describeInput(in))
	in.Segment.Stages, in.Segment.Tags = []string{"active"}, []string{"vip", "webinar-2026"}
	assert.Contains(t, describeInput(in), "to contacts with stage active, tags vip and webinar-2026 with marketing consent")
}
