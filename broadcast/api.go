// Package broadcast sends a one-off message (a holiday greeting, an
// announcement) to a CRM segment at the speed of a dedicated newsletter
// sender, durably and exactly once per recipient.
//
// One Broadcast workflow (ID "broadcast/<BroadcastID>") loops over pages of
// the segment; one SendPage activity per page pages through the CRM with
// keyset pagination, applies the per-recipient rules in SQL (erased,
// consent, suppression list, frequency cap, segment filters) and sends the
// page over the worker's pooled SMTP connections with bounded concurrency,
// throttled, under the same send ledger (claim, send, mark sent) and
// Message-IDs as journey mail. Workflow tasks stay a few per page, whatever
// the page size: the Temporal server is not on the per-recipient path.
//
// See docs/broadcast.md for the design.
package broadcast

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/crm"
)

// WorkflowName is the registered name of the broadcast workflow.
const WorkflowName = "Broadcast"

// QueryProgress is the query that returns the broadcast's Progress.
const QueryProgress = "progress"

// ActivityPrefix is the prefix the Activities struct is registered with
// (activity.RegisterOptions.Name), so its activity is ActivitySendPage.
const ActivityPrefix = "Broadcast"

// ActivitySendPage is the registered name of Activities.SendPage.
const ActivitySendPage = ActivityPrefix + "SendPage"

// DefaultPageSize is the page size when Input.PageSize is 0.
const DefaultPageSize = 500

// MaxPageSize is the largest Input.PageSize.
const MaxPageSize = 5000

// Segment selects the recipients: contacts matching every field that is
// set. Contacts that were erased, gave no marketing consent or have no
// address are never recipients.
type Segment struct {
	Stages           []string `json:"stages,omitempty"`
	MinScore         *int     `json:"min_score,omitempty"`
	LeadSources      []string `json:"lead_sources,omitempty"`
	CustomerIDPrefix string   `json:"customer_id_prefix,omitempty"`
}

func (s Segment) crm() crm.Segment {
	return crm.Segment{Stages: s.Stages, MinScore: s.MinScore, LeadSources: s.LeadSources, CustomerIDPrefix: s.CustomerIDPrefix}
}

// Input starts a broadcast.
type Input struct {
	// BroadcastID names the broadcast; it is part of the workflow ID and of
	// every send key ("<customerID>/broadcast/<BroadcastID>"), so one ID
	// sends at most one email per recipient, ever.
	BroadcastID string `json:"broadcast_id"`
	// CampaignID and CampaignVersion say where the template lives; an
	// empty version means the latest one when the first page is sent (the
	// broadcast then keeps that version).
	CampaignID, CampaignVersion string
	// Template is the template ID in the campaign. A broadcast is marketing
	// mail: consent, the suppression list, the frequency cap and the
	// unsubscribe headers apply whatever the template's category.
	Template string  `json:"template"`
	Segment  Segment `json:"segment"`
	// RatePerSecond throttles the sends; 0 means unlimited.
	RatePerSecond int `json:"rate_per_second,omitempty"`
	// PageSize is how many contacts one SendPage activity handles
	// (default 500, at most MaxPageSize).
	PageSize int `json:"page_size,omitempty"`
	// RespectQuietHours skips recipients inside the campaign's quiet hours
	// (their local time) in this pass and reports them as deferred. By
	// default a broadcast goes out now.
	RespectQuietHours bool `json:"respect_quiet_hours,omitempty"`

	// Set by continue-as-new.
	Cursor   string   `json:"cursor,omitempty"`
	Progress Progress `json:"progress,omitempty"`
}

// Progress is what a broadcast did so far. Every recipient of the segment
// is counted once, in one of Sent, Duplicate, Suppressed, Failed, Deferred.
type Progress struct {
	// Sent: accepted by the SMTP server. Duplicate: sent by an earlier
	// attempt of this broadcast (a page retried after a crash, or the
	// broadcast started again after it failed). Suppressed: on the
	// suppression list. Failed: refused permanently (recorded in the
	// ledger, not retried). Deferred: over the frequency cap, or inside
	// quiet hours when RespectQuietHours is set — not sent in this pass.
	Sent, Duplicate, Suppressed, Failed, Deferred, Pages int
	// Cursor is the last customer ID handled (the keyset position).
	Cursor string
	Done   bool
	// StartedAt and FinishedAt are workflow times.
	StartedAt, FinishedAt time.Time
}

// Recipients is the number of recipients handled so far.
func (p Progress) Recipients() int {
	return p.Sent + p.Duplicate + p.Suppressed + p.Failed + p.Deferred
}

func (p *Progress) add(r PageResult) {
	p.Sent += r.Sent
	p.Duplicate += r.Duplicate
	p.Suppressed += r.Suppressed
	p.Failed += r.Failed
	p.Deferred += r.Deferred
}

// WorkflowID returns the workflow ID of a broadcast.
func WorkflowID(broadcastID string) string { return "broadcast/" + broadcastID }

// InputError is a field of Input that cannot work.
type InputError struct {
	Field   string
	Problem string
}

func (e *InputError) Error() string { return "broadcast: invalid " + e.Field + ": " + e.Problem }

func invalidInput(field, format string, args ...any) error {
	return &InputError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`)

// Validate checks the input; errors are *InputError naming the field by
// its JSON name ("broadcast_id", "segment.stages[0]", "page_size").
func (in Input) Validate() error {
	if in.BroadcastID == "" {
		return invalidInput("broadcast_id", "is empty")
	}
	if !idRE.MatchString(in.BroadcastID) {
		return invalidInput("broadcast_id", "%q must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", in.BroadcastID)
	}
	if in.CampaignID == "" {
		return invalidInput("campaign_id", "is empty")
	}
	if in.Template == "" {
		return invalidInput("template", "is empty")
	}
	if err := in.Segment.crm().Validate(); err != nil {
		var verr *crm.ValidationError
		if errors.As(err, &verr) {
			return invalidInput(verr.Field, "%s", verr.Problem)
		}
		return invalidInput("segment", "%v", err)
	}
	if in.RatePerSecond < 0 {
		return invalidInput("rate_per_second", "%d is negative (0 means unlimited)", in.RatePerSecond)
	}
	if in.PageSize < 0 || in.PageSize > MaxPageSize {
		return invalidInput("page_size", "%d is not between 0 (default %d) and %d", in.PageSize, DefaultPageSize, MaxPageSize)
	}
	return nil
}

func (in Input) pageSize() int {
	if in.PageSize == 0 {
		return DefaultPageSize
	}
	return in.PageSize
}

// ErrAlreadyStarted is returned by Start for a broadcast ID that was used
// before (running or completed).
var ErrAlreadyStarted = errors.New("broadcast already started")

// Start validates in and starts the broadcast's workflow, ID
// "broadcast/<BroadcastID>", on taskQueue.
//
// A broadcast ID is used once: Start answers ErrAlreadyStarted (and sends
// nothing) while the broadcast runs and after it completed. Only a
// broadcast that failed, was cancelled or terminated may be started again
// with the same ID; it then sends under the same send keys, so every
// recipient reached by the first run is skipped (a Duplicate) and nobody
// gets the message twice.
func Start(ctx context.Context, c client.Client, taskQueue string, in Input) (client.WorkflowRun, error) {
	in.Cursor, in.Progress = "", Progress{}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if taskQueue == "" {
		return nil, invalidInput("task queue", "is empty")
	}
	opts := client.StartWorkflowOptions{
		ID:        WorkflowID(in.BroadcastID),
		TaskQueue: taskQueue,
		// Running: fail. Completed: reject. Failed, cancelled, terminated:
		// may run again (the send ledger skips whoever got it).
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary: fmt.Sprintf("Broadcast %s: template %s of campaign %s to %s",
			in.BroadcastID, in.Template, campaignKey(in.CampaignID, in.CampaignVersion), describeSegment(in.Segment)),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, WorkflowName, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return nil, fmt.Errorf("%w: broadcast %q (workflow %s) is running or has completed; "+
				"a broadcast ID sends at most once per recipient — choose a new ID for a new broadcast",
				ErrAlreadyStarted, in.BroadcastID, WorkflowID(in.BroadcastID))
		}
		return nil, fmt.Errorf("start broadcast %q: %w", in.BroadcastID, err)
	}
	return run, nil
}

// GetProgress returns a broadcast's progress: from the progress query, or,
// when the query cannot be answered (no worker polls the task queue), from
// the result of a completed broadcast.
func GetProgress(ctx context.Context, c client.Client, broadcastID string) (Progress, error) {
	var p Progress
	res, qerr := c.QueryWorkflow(ctx, WorkflowID(broadcastID), "", QueryProgress)
	if qerr == nil {
		if err := res.Get(&p); err != nil {
			return Progress{}, fmt.Errorf("decode progress of broadcast %q: %w", broadcastID, err)
		}
		return p, nil
	}
	var notFound *serviceerror.NotFound
	if errors.As(qerr, &notFound) {
		return Progress{}, fmt.Errorf("broadcast %q: no such broadcast: %w", broadcastID, qerr)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, WorkflowID(broadcastID), "")
	if err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		if err := c.GetWorkflow(ctx, WorkflowID(broadcastID), "").Get(ctx, &p); err == nil {
			return p, nil
		}
	}
	return Progress{}, fmt.Errorf("query progress of broadcast %q: %w", broadcastID, qerr)
}

func campaignKey(id, version string) string {
	if version == "" {
		return id + " (latest version)"
	}
	return id + "@" + version
}

func describeSegment(s Segment) string {
	d := "contacts"
	if len(s.Stages) > 0 {
		d += fmt.Sprintf(" in stage %v", s.Stages)
	}
	if s.MinScore != nil {
		d += fmt.Sprintf(" with score >= %d", *s.MinScore)
	}
	if len(s.LeadSources) > 0 {
		d += fmt.Sprintf(" from %v", s.LeadSources)
	}
	if s.CustomerIDPrefix != "" {
		d += fmt.Sprintf(" with IDs starting %q", s.CustomerIDPrefix)
	}
	if d == "contacts" {
		return "all contacts with marketing consent"
	}
	return d + " with marketing consent"
}
