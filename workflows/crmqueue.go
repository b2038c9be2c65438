package workflows

import (
	"fmt"
	"hash/fnv"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/lifecycle/activities"
)

// The CRM backlog. Every CRM write a journey decides on goes through
// JourneyState.CRM.Writes, in order, and leaves it only once the CRM has it
// (or refused it for good, which the timeline and a metric record). While
// PostgreSQL is reachable that is within the same workflow task: one local
// activity writes the batch. When it is not, the writes stay — carried
// across continue-as-new — and are retried with backoff for as long as it
// takes, while the journey goes on sending its emails and taking events;
// its current details, the state query and the metrics show the backlog.
const (
	// crmCallTimeout bounds the one attempt a workflow task makes before
	// it leaves the batch to the backoff below. Short: the workflow task
	// waits for it.
	crmCallTimeout = 5 * time.Second
	// crmRetryFirst and crmRetryMax bound the backoff between tries while
	// the database is away: the first retry comes a second later, then
	// twice as long each time, never more than a minute apart — so a
	// journey catches up at most a minute after the database is back.
	crmRetryFirst = time.Second
	crmRetryMax   = time.Minute
	// crmBatchMax bounds the writes one activity call makes.
	crmBatchMax = 100
)

// Metric names (the worker exports them with a _total suffix).
const (
	metricCRMDeferred = "lifecycle_crm_writes_deferred"
	metricCRMCaughtUp = "lifecycle_crm_writes_caught_up"
)

// queue appends writes to the backlog. Behind a failed attempt they wait
// for its retry, so the CRM gets a customer's writes in order.
func (j *journey) queue(ctx workflow.Context, writes ...activities.CRMWrite) {
	if len(writes) == 0 {
		return
	}
	j.s.CRM.Writes = append(j.s.CRM.Writes, writes...)
	if j.crmBackedUp() {
		j.countDeferred(ctx)
	}
}

// crmBackedUp: an attempt failed and the CRM has not taken the backlog
// since.
func (j *journey) crmBackedUp() bool { return j.s.CRM.Failures > 0 }

// crmRetryDue: no failed attempt is waiting for its retry time.
func (j *journey) crmRetryDue(ctx workflow.Context) bool {
	return j.s.CRM.RetryAt.IsZero() || !workflow.Now(ctx).Before(j.s.CRM.RetryAt)
}

// flushCRM writes the backlog when it is due, batch by batch, until it is
// empty or an attempt fails.
func (j *journey) flushCRM(ctx workflow.Context) {
	for len(j.s.CRM.Writes) > 0 && j.crmRetryDue(ctx) {
		batch := j.s.CRM.Writes[:min(len(j.s.CRM.Writes), crmBatchMax)]
		res, err := j.writeCRM(ctx, batch)
		if err != nil {
			j.crmFailed(ctx, err)
			return
		}
		j.crmWritten(ctx, batch, res)
	}
}

// writeCRM runs one batch as a local activity: milliseconds of database
// work inside the workflow task that decided on it, so a signal's events
// are recorded and applied in one workflow task, with no activity task
// round trip through the server.
func (j *journey) writeCRM(ctx workflow.Context, batch []activities.CRMWrite) (activities.WriteCRMResult, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: crmCallTimeout,
		// One attempt: the retries are the backoff's, with timers, so the
		// workflow task is not held and the journey goes on meanwhile.
		// (The time-skipping test environment also measures the deadline
		// of a local activity's second attempt against the wall clock.)
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var res activities.WriteCRMResult
	err := workflow.ExecuteLocalActivity(lctx, a.WriteCRM, activities.WriteCRMInput{
		CustomerID: j.s.CustomerID, Writes: batch,
	}).Get(ctx, &res)
	return res, err
}

// crmWritten removes what the CRM took (or refused for good) from the head
// of the backlog.
func (j *journey) crmWritten(ctx workflow.Context, batch []activities.CRMWrite, res activities.WriteCRMResult) {
	b := &j.s.CRM
	now := j.now(ctx)
	for _, r := range res.Rejected {
		workflow.GetLogger(ctx).Error("CRM refused a write", "op", r.Op, "reason", r.Reason)
		j.s.note(now, "error", fmt.Sprintf("CRM refused %s: %s", r.Op, r.Reason))
	}
	done := min(res.Done, len(batch))
	if caught := min(done, b.Deferred); caught > 0 {
		workflow.GetMetricsHandler(ctx).Counter(metricCRMCaughtUp).Inc(int64(caught))
		b.Deferred -= caught
	}
	b.Writes = b.Writes[done:]
	if len(b.Writes) == 0 {
		b.Writes = nil
	}
	if b.Failures > 0 {
		if len(b.Writes) == 0 {
			j.s.note(now, "crm", fmt.Sprintf("CRM caught up: the writes of the last %s are in",
				workflow.Now(ctx).Sub(b.Since).Round(time.Second)))
		}
		b.Failures, b.RetryAt, b.Since, b.LastError = 0, time.Time{}, time.Time{}, ""
	}
}

// crmFailed keeps the backlog and sets the time of the next try.
func (j *journey) crmFailed(ctx workflow.Context, err error) {
	b := &j.s.CRM
	// Workflow time, not the journey's scaled clock (j.now): a database
	// outage lasts real time.
	unscaled := workflow.Now(ctx)
	if b.Failures == 0 {
		b.Since = unscaled
		j.s.note(j.now(ctx), "crm", fmt.Sprintf("CRM unavailable: %d writes wait and are retried until they are in", len(b.Writes)))
	}
	b.Failures++
	b.LastError = shorten(err.Error(), 300)
	b.RetryAt = unscaled.Add(crmBackoff(j.s.CustomerID, b.Failures))
	workflow.GetLogger(ctx).Warn("CRM writes deferred", "writes", len(b.Writes), "failures", b.Failures,
		"retry_at", b.RetryAt, "error", err)
	j.countDeferred(ctx)
}

// countDeferred counts the writes that joined the backlog since the last
// count.
func (j *journey) countDeferred(ctx workflow.Context) {
	b := &j.s.CRM
	if n := len(b.Writes) - b.Deferred; n > 0 {
		workflow.GetMetricsHandler(ctx).Counter(metricCRMDeferred).Inc(int64(n))
		b.Deferred = len(b.Writes)
	}
}

// crmBackoff is the wait before try number failures+1: exponential, capped,
// plus up to 20 % that depends on the customer, so that journeys that
// failed together do not all retry in the same second.
func crmBackoff(customerID string, failures int) time.Duration {
	d := crmRetryMax
	if failures < 7 {
		d = min(crmRetryFirst<<(failures-1), crmRetryMax)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(customerID))
	return d + d*time.Duration(h.Sum32()%21)/100
}

// crmStatus describes the backlog for the current details and the query;
// empty when there is none.
func (j *journey) crmStatus() string {
	b := j.s.CRM
	switch {
	case len(b.Writes) == 0:
		return ""
	case b.Failures == 0:
		return fmt.Sprintf("%d writes in flight", len(b.Writes))
	default:
		return fmt.Sprintf("%d writes wait for the CRM since %s (retry %d at %s): %s", len(b.Writes),
			b.Since.UTC().Format("15:04:05 MST"), b.Failures+1, b.RetryAt.UTC().Format("15:04:05 MST"), b.LastError)
	}
}

// shorten cuts s to at most n bytes, on a rune boundary, marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
