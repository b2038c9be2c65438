package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/temporalclient"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/privacy"
	"github.com/acme/lifecycle/workflows"
)

// temporalClient points starter at the test Temporal, on a task queue of
// its own (no worker polls it: nothing a test starts ever runs).
func temporalClient(t *testing.T) client.Client {
	t.Helper()
	addr := testenv.Temporal(t)
	t.Setenv("CAMPAIGN_DIR", "")
	t.Setenv("TEMPORAL_ADDRESS", addr)
	t.Setenv("TEMPORAL_TASK_QUEUE", "starter-test-"+testenv.RandomID(4))
	// The data keys of the payloads starter encrypts live in the CRM
	// schema, which the worker creates; no worker runs here.
	dbURL := testenv.NewDatabase(t)
	store, err := crm.Open(t.Context(), dbURL)
	require.NoError(t, err)
	require.NoError(t, store.Migrate(t.Context()))
	store.Close()
	t.Setenv("DATABASE_URL", dbURL)
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	// The same payload encryption as starter's, to read what it wrote.
	cfg, err := config.Load()
	require.NoError(t, err)
	enc, err := temporalclient.NewEncryption(cfg)
	require.NoError(t, err)
	t.Cleanup(enc.Close)
	opts, err := enc.Options(cfg.Temporal)
	require.NoError(t, err)
	opts.HostPort, opts.Namespace, opts.Logger = addr, ns, quietLogger{}
	c, err := client.Dial(opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// testDataConverter decodes what starter encrypted (temporalClient set
// the environment).
func testDataConverter(t *testing.T) converter.DataConverter {
	t.Helper()
	cfg, err := config.Load()
	require.NoError(t, err)
	enc, err := temporalclient.NewEncryption(cfg)
	require.NoError(t, err)
	t.Cleanup(enc.Close)
	return privacy.DataConverter(enc.Codec)
}

func describe(t *testing.T, c client.Client, name string) *client.ScheduleDescription {
	t.Helper()
	d, err := c.ScheduleClient().GetHandle(t.Context(), scheduleID(name)).Describe(t.Context())
	require.NoError(t, err)
	return d
}

func TestScheduleCreateListPauseDelete(t *testing.T) {
	c := temporalClient(t)
	name := "test-" + testenv.RandomID(4)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := c.ScheduleClient().GetHandle(ctx, scheduleID(name)).Delete(ctx)
		var notFound *serviceerror.NotFound
		if err != nil && !errors.As(err, &notFound) {
			t.Logf("delete schedule %s: %v", name, err)
		}
	})

	code, stdout, stderr := cli(t, "schedule", "create", name, "--cron", "0 9 * * MON", "--time-zone", "Europe/Berlin",
		"--template", "review_ask", "--segment-stage", "active", "--segment-min-score", "10", "--segment-tag", "vip",
		"--segment-tag", "webinar-2026", "--rate", "20")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "contacts with stage active, score ≥ 10, tags vip and webinar-2026 with marketing consent")
	assert.Contains(t, stdout, "schedule "+name+" created")
	assert.Contains(t, stdout, "0 9 * * MON in Europe/Berlin")
	assert.Contains(t, stdout, "reaches each contact of the segment once")

	// What Temporal holds: a Monday 09:00 Berlin spec whose action starts the
	// broadcast workflow with the input, under broadcast/NAME.
	d := describe(t, c, name)
	assert.Equal(t, "Europe/Berlin", d.Schedule.Spec.TimeZoneName)
	assert.False(t, d.Schedule.State.Paused)
	require.NotEmpty(t, d.Info.NextActionTimes)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	next := d.Info.NextActionTimes[0].In(berlin)
	assert.Equal(t, time.Monday, next.Weekday())
	assert.Equal(t, "09:00", next.Format("15:04"))
	act, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	assert.Equal(t, workflows.BroadcastWorkflowName, act.Workflow)
	assert.Equal(t, workflows.BroadcastWorkflowID(name), act.ID)
	assert.Equal(t, os.Getenv("TEMPORAL_TASK_QUEUE"), act.TaskQueue)
	var in workflows.BroadcastInput
	require.Len(t, act.Args, 1)
	p, ok := act.Args[0].(*commonpb.Payload)
	require.True(t, ok, "describe returns the arguments as payloads")
	require.NoError(t, testDataConverter(t).FromPayload(p, &in))
	assert.Equal(t, name, in.BroadcastID)
	assert.Equal(t, "review_ask", in.Template)
	assert.Equal(t, []string{"active"}, in.Segment.Stages)
	require.NotNil(t, in.Segment.MinScore)
	assert.Equal(t, 10, *in.Segment.MinScore)
	assert.Equal(t, []string{"vip", "webinar-2026"}, in.Segment.Tags)
	assert.Equal(t, 20, in.RatePerSecond)

	// Creating it again is refused with what to do.
	code, _, stderr = cli(t, "schedule", "create", name, "--cron", "0 9 * * MON", "--template", "review_ask", "--segment-stage", "active")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "a schedule named "+name+" exists already")

	// List (Temporal's schedule list is eventually consistent).
	var listed string
	require.Eventually(t, func() bool {
		code, listed, _ = cli(t, "schedule", "list")
		return code == 0 && strings.Contains(listed, name)
	}, 20*time.Second, 250*time.Millisecond, "schedule %s not listed", name)
	line := lineWith(listed, name)
	assert.Contains(t, line, "0 9 * * MON (Europe/Berlin)")
	assert.Contains(t, line, "active")
	assert.Contains(t, line, "template review_ask of saas-lifecycle")
	assert.Contains(t, line, "tags vip and webinar-2026")

	code, stdout, stderr = cli(t, "schedule", "pause", name, "--note", "summer break")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "schedule "+name+" paused\n", stdout)
	d = describe(t, c, name)
	assert.True(t, d.Schedule.State.Paused)
	assert.Equal(t, "summer break", d.Schedule.State.Note)

	var entries []scheduleInfo
	code, stdout, stderr = cli(t, "schedule", "list", "--json")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &entries))
	var mine *scheduleInfo
	for i := range entries {
		if entries[i].Name == name {
			mine = &entries[i]
		}
	}
	require.NotNil(t, mine)
	assert.True(t, mine.Paused, "describe is consistent at once")
	assert.Equal(t, []string{"0 9 * * MON"}, mine.Cron)
	require.NotNil(t, mine.Sends)
	assert.Equal(t, "review_ask", mine.Sends.Template)

	code, _, stderr = cli(t, "schedule", "unpause", name)
	require.Equal(t, 0, code, stderr)
	assert.False(t, describe(t, c, name).Schedule.State.Paused)

	code, stdout, stderr = cli(t, "schedule", "delete", name)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "schedule "+name+" deleted\n", stdout)
	code, _, stderr = cli(t, "schedule", "delete", name)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "no schedule named "+name)
	code, _, stderr = cli(t, "schedule", "pause", name)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "no schedule named "+name)
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// launch broadcast starts the broadcast workflow (no worker polls the
// test's task queue, so it sends nothing) and refuses the same id again.
func TestLaunchBroadcastStartsOnceAndFollowsNothingRunning(t *testing.T) {
	c := temporalClient(t)
	id := "test-" + testenv.RandomID(4)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.TerminateWorkflow(ctx, workflows.BroadcastWorkflowID(id), "", "test cleanup"); err != nil {
			t.Logf("terminate %s: %v", workflows.BroadcastWorkflowID(id), err)
		}
	})
	code, stdout, stderr := cli(t, "launch", "broadcast", "--id", id, "--template", "holiday_midyear", "--stage", "active", "--rate", "10")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "broadcast "+id+" started: template holiday_midyear of saas-lifecycle")
	assert.Contains(t, stdout, "workflow  "+workflows.BroadcastWorkflowID(id))

	desc, err := c.DescribeWorkflowExecution(t.Context(), workflows.BroadcastWorkflowID(id), "")
	require.NoError(t, err)
	assert.Equal(t, workflows.BroadcastWorkflowName, desc.GetWorkflowExecutionInfo().GetType().GetName())

	code, _, stderr = cli(t, "launch", "broadcast", "--id", id, "--template", "holiday_midyear", "--stage", "active")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "broadcast already started")
	assert.Contains(t, stderr, "starter launch broadcast --id "+id+" --wait")
}
