package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/crm"
)

// Names callers use to talk to a broadcast.
const (
	// BroadcastWorkflowName is the registered name of the broadcast
	// workflow.
	BroadcastWorkflowName = "Broadcast"
	// QueryBroadcastProgress returns the broadcast's BroadcastProgress.
	QueryBroadcastProgress = "progress"
)

// Page sizes of a broadcast (BroadcastInput.PageSize).
const (
	DefaultBroadcastPageSize = activities.DefaultBroadcastPageSize
	MaxBroadcastPageSize     = activities.MaxBroadcastPageSize
)

// BroadcastWorkflowID returns the workflow ID of a broadcast.
func BroadcastWorkflowID(broadcastID string) string { return "broadcast/" + broadcastID }

// BroadcastSegment selects a broadcast's recipients: contacts matching
// every field that is set. Contacts that were erased, gave no marketing
// consent or have no address are never recipients. It has the fields of
// activities.BroadcastSegment, to which it converts.
type BroadcastSegment struct {
	Stages           []string `json:"stages,omitempty"`
	MinScore         *int     `json:"min_score,omitempty"`
	LeadSources      []string `json:"lead_sources,omitempty"`
	CustomerIDPrefix string   `json:"customer_id_prefix,omitempty"`
	// Tags: contacts having every one of these tags (customer.CheckTags;
	// Validate names a bad one "segment.tags[i]").
	Tags []string `json:"tags,omitempty"`
}

// BroadcastInput starts a broadcast.
type BroadcastInput struct {
	// BroadcastID names the broadcast; it is part of the workflow ID and of
	// every send key ("<customerID>/broadcast/<BroadcastID>"), so one ID
	// sends at most one email per recipient. A run a Temporal Schedule
	// starts is one occurrence: its keys also carry the scheduled time, so
	// a recurring broadcast reaches each recipient once per occurrence.
	BroadcastID string `json:"broadcast_id"`
	// CampaignID and CampaignVersion say where the template lives; an
	// empty version means the latest one when the first page is sent (the
	// broadcast then keeps that version).
	CampaignID, CampaignVersion string
	// Template is the template ID in the campaign. A broadcast is marketing
	// mail: consent, the suppression list, the frequency cap and the
	// unsubscribe headers apply whatever the template's category.
	Template string           `json:"template"`
	Segment  BroadcastSegment `json:"segment"`
	// RatePerSecond throttles the sends; 0 means unlimited.
	RatePerSecond int `json:"rate_per_second,omitempty"`
	// PageSize is how many contacts one page activity handles (default
	// DefaultBroadcastPageSize, at most MaxBroadcastPageSize).
	PageSize int `json:"page_size,omitempty"`
	// RespectQuietHours skips recipients inside the campaign's quiet hours
	// (their local time) in this pass and reports them as deferred. By
	// default a broadcast goes out now.
	RespectQuietHours bool `json:"respect_quiet_hours,omitempty"`

	// Set by continue-as-new.
	Cursor   string            `json:"cursor,omitempty"`
	Progress BroadcastProgress `json:"progress,omitempty"`
}

// broadcast is what the page activity needs: the input without the
// carried state.
func (in BroadcastInput) broadcast() activities.Broadcast {
	return activities.Broadcast{
		BroadcastID: in.BroadcastID, CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion,
		Template: in.Template, Segment: activities.BroadcastSegment(in.Segment),
		RatePerSecond: in.RatePerSecond, PageSize: in.PageSize, RespectQuietHours: in.RespectQuietHours,
	}
}

// BroadcastProgress is what a broadcast did so far. Every recipient of the
// segment is counted once, in one of Sent, Duplicate, Suppressed, Failed,
// Deferred.
type BroadcastProgress struct {
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
func (p BroadcastProgress) Recipients() int {
	return p.Sent + p.Duplicate + p.Suppressed + p.Failed + p.Deferred
}

func (p *BroadcastProgress) add(r activities.BroadcastPageResult) {
	p.Sent += r.Sent
	p.Duplicate += r.Duplicate
	p.Suppressed += r.Suppressed
	p.Failed += r.Failed
	p.Deferred += r.Deferred
}

// BroadcastInputError is a field of BroadcastInput that cannot work.
type BroadcastInputError struct {
	// Field is the JSON name ("broadcast_id", "segment.stages[1]").
	Field   string
	Problem string
}

func (e *BroadcastInputError) Error() string {
	return "broadcast: invalid " + e.Field + ": " + e.Problem
}

// Validate checks the input; errors are *BroadcastInputError naming the
// field by its JSON name ("broadcast_id", "segment.stages[0]",
// "page_size"). The campaign and the template are checked by the first
// page (a non-retryable failure that names them).
func (in BroadcastInput) Validate() error {
	err := in.broadcast().Validate()
	if err == nil {
		return nil
	}
	var verr *crm.ValidationError
	if errors.As(err, &verr) {
		return &BroadcastInputError{Field: verr.Field, Problem: verr.Problem}
	}
	return &BroadcastInputError{Field: "input", Problem: err.Error()}
}

// ErrBroadcastAlreadyStarted is returned by StartBroadcast for a broadcast
// ID that was used before (running or completed).
var ErrBroadcastAlreadyStarted = errors.New("broadcast already started")

// StartBroadcast validates in and starts the broadcast's workflow, ID
// "broadcast/<BroadcastID>", on taskQueue.
//
// A broadcast ID is used once: StartBroadcast answers
// ErrBroadcastAlreadyStarted (and sends nothing) while the broadcast runs
// and after it completed. Only a broadcast that failed, was cancelled or
// terminated may be started again with the same ID; it then sends under
// the same send keys, so every recipient reached by the first run is
// skipped (a Duplicate) and nobody gets the message twice.
func StartBroadcast(ctx context.Context, c client.Client, taskQueue string, in BroadcastInput) (client.WorkflowRun, error) {
	in.Cursor, in.Progress = "", BroadcastProgress{}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if taskQueue == "" {
		return nil, &BroadcastInputError{Field: "task queue", Problem: "is empty"}
	}
	opts := client.StartWorkflowOptions{
		ID:        BroadcastWorkflowID(in.BroadcastID),
		TaskQueue: taskQueue,
		// Running: fail. Completed: reject. Failed, cancelled, terminated:
		// may run again (the send ledger skips whoever got it).
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary: fmt.Sprintf("Broadcast %s: template %s of campaign %s to %s",
			in.BroadcastID, in.Template, campaignKey(in.CampaignID, in.CampaignVersion), describeSegment(in.Segment)),
	}
	run, err := c.ExecuteWorkflow(ctx, opts, BroadcastWorkflowName, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return nil, fmt.Errorf("%w: broadcast %q (workflow %s) is running or has completed; "+
				"a broadcast ID sends at most once per recipient — choose a new ID for a new broadcast",
				ErrBroadcastAlreadyStarted, in.BroadcastID, BroadcastWorkflowID(in.BroadcastID))
		}
		return nil, fmt.Errorf("start broadcast %q: %w", in.BroadcastID, err)
	}
	return run, nil
}

// GetBroadcastProgress returns a broadcast's progress: from the progress
// query, or, when the query cannot be answered (no worker polls the task
// queue), from the result of a completed broadcast.
func GetBroadcastProgress(ctx context.Context, c client.Client, broadcastID string) (BroadcastProgress, error) {
	var p BroadcastProgress
	id := BroadcastWorkflowID(broadcastID)
	res, qerr := c.QueryWorkflow(ctx, id, "", QueryBroadcastProgress)
	if qerr == nil {
		if err := res.Get(&p); err != nil {
			return BroadcastProgress{}, fmt.Errorf("decode progress of broadcast %q: %w", broadcastID, err)
		}
		return p, nil
	}
	var notFound *serviceerror.NotFound
	if errors.As(qerr, &notFound) {
		return BroadcastProgress{}, fmt.Errorf("broadcast %q: no such broadcast: %w", broadcastID, qerr)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err == nil && desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		if err := c.GetWorkflow(ctx, id, "").Get(ctx, &p); err == nil {
			return p, nil
		}
	}
	return BroadcastProgress{}, fmt.Errorf("query progress of broadcast %q: %w", broadcastID, qerr)
}

func campaignKey(id, version string) string {
	if version == "" {
		return id + " (latest version)"
	}
	return id + "@" + version
}

func describeSegment(s BroadcastSegment) string {
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
	if len(s.Tags) > 0 {
		d += fmt.Sprintf(" tagged %v", s.Tags)
	}
	if d == "contacts" {
		return "all contacts with marketing consent"
	}
	return d + " with marketing consent"
}
