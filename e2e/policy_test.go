package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/internal/stacktest"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// policyScale compresses the journey: a day is 12 s, the campaign's
// two-day minimum gap 24 s of the journey's real time.
const policyScale = 7200

// policyCampaignDir writes a campaign for this test: the workflow tests'
// campaign with a minimum gap of two days and nothing else in its contact
// policy (no quiet hours, no cap: times do not depend on the hour the test
// runs), and a transactional first email, so that a broadcast right after
// the signup is the customer's first marketing email.
func policyCampaignDir(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "workflows", "testdata", "test-campaign.yaml"))
	require.NoError(t, err)
	text := string(raw)
	for _, r := range [][2]string{
		{"id: test-lifecycle", "id: policy-e2e"},
		{`  quiet_hours: {start: "21:00", end: "08:00"}` + "\n", ""},
		{"  frequency_cap: {max: 3, window: 7d, over_cap: delay}", "  min_gap: 2d"},
		{"{id: welcome, offset: 0d, template: welcome}", "{id: welcome, offset: 0d, template: onboard}"},
	} {
		require.Contains(t, text, r[0], "the workflow tests' campaign changed: update this test")
		text = strings.Replace(text, r[0], r[1], 1)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "policy-e2e.yaml"), []byte(text), 0o644))
	return dir
}

// TestContactPolicyHoldsAcrossJourneysAndBroadcasts: the minimum gap holds
// between a broadcast and a journey email, in both orders, on the real
// stack — the journey cannot see the broadcast; the send ledger does. A
// journey email due 10 s after a broadcast is held until the gap has
// passed and then sent once; a second broadcast right after the first
// defers the customer instead of mailing them again.
func TestContactPolicyHoldsAcrossJourneysAndBroadcasts(t *testing.T) {
	t.Parallel()
	s := &stack{stacktest.New(t, map[string]string{
		"TEMPORAL_TASK_QUEUE": "e2e-" + testenv.RandomID(4), "TIME_SCALE": "7200",
		"CAMPAIGN_DIR": policyCampaignDir(t),
	})}
	s.StartWorker(t)
	ctx := context.Background()
	run := testenv.RandomID(5)
	id, addr := "gap-"+run, "gap-"+run+"@policy.example"
	st := workflows.Starter{Client: s.Client, TaskQueue: s.Cfg.Temporal.TaskQueue, CampaignID: "policy-e2e", TimeScale: policyScale}
	_, err := st.Signup(ctx, workflows.Signup{CustomerID: id, Email: addr, FirstName: "Gia", LeadSource: "cold", TimeZone: "UTC"})
	require.NoError(t, err)
	s.WaitMail(t, addr, "Onboarding", 30*time.Second) // the transactional welcome

	broadcast := func(name string) workflows.BroadcastProgress {
		r, err := workflows.StartBroadcast(ctx, s.Client, s.Cfg.Temporal.TaskQueue, workflows.BroadcastInput{
			BroadcastID: name + "-" + run, CampaignID: "policy-e2e", Template: "greeting",
			Segment: workflows.BroadcastSegment{CustomerIDPrefix: id}})
		require.NoError(t, err)
		var p workflows.BroadcastProgress
		require.NoError(t, r.Get(ctx, &p))
		return p
	}
	p := broadcast("first")
	require.Equal(t, 1, p.Sent, "the customer's first marketing email: %+v", p)
	sentBroadcast := s.WaitMail(t, addr, "Happy new year", 30*time.Second)

	// The trial's second email is due a journey day (12 s) after the
	// signup; the gap (24 s of this journey's time) holds it.
	tips := s.WaitMail(t, addr, "Tips", 90*time.Second)
	gap := time.Duration(float64(48*time.Hour) / policyScale)
	require.GreaterOrEqual(t, tips.Created.Sub(sentBroadcast.Created), gap-time.Second,
		"the journey email went out %s after the broadcast; the gap is %s", tips.Created.Sub(sentBroadcast.Created), gap)
	v, err := workflows.State(ctx, s.Client, id)
	require.NoError(t, err)
	held := false
	for _, e := range v.Timeline {
		held = held || (e.Kind == "deferred" && strings.Contains(e.Detail, "send ledger"))
	}
	require.True(t, held, "the journey's timeline says the ledger held the email: %+v", v.Timeline)

	// A broadcast right after: within the gap of the journey email (the
	// broadcast's policy is not scaled: two days), so the customer is
	// deferred, not mailed.
	p = broadcast("second")
	require.Equal(t, 0, p.Sent, "%+v", p)
	require.Equal(t, 1, p.Deferred, "%+v", p)
	time.Sleep(2 * time.Second)
	require.Len(t, s.Mails(t, "to:"+addr+` subject:"Happy new year"`), 1, "one broadcast email only")
	require.Len(t, s.Mails(t, "to:"+addr+` subject:"Tips"`), 1, "the held email went out once")
	s.recordHistories(t, id, "contact-policy")
}
