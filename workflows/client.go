package workflows

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Starter sends signups and events into journeys with signal-with-start, so
// the first message for a customer creates the journey and nothing sent
// before it exists is lost.
type Starter struct {
	Client     client.Client
	TaskQueue  string
	CampaignID string
	TimeScale  float64
}

func (s Starter) options(customerID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:        JourneyID(customerID),
		TaskQueue: s.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			AttrCustomerID.ValueSet(customerID),
			AttrStage.ValueSet("pending"),
		),
		StaticSummary: fmt.Sprintf("Lifecycle journey of customer %s (campaign %s)", customerID, s.CampaignID),
	}
}

func (s Starter) input(customerID string) JourneyInput {
	return JourneyInput{CustomerID: customerID, CampaignID: s.CampaignID, TimeScale: s.TimeScale}
}

// Signup starts the customer's journey, or updates the profile of one that
// runs; it never starts a second journey for the same customer.
func (s Starter) Signup(ctx context.Context, in Signup) (client.WorkflowRun, error) {
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("signup: %w", err)
	}
	run, err := s.Client.SignalWithStartWorkflow(ctx, JourneyID(in.CustomerID), SignalSignup, in,
		s.options(in.CustomerID), WorkflowName, s.input(in.CustomerID))
	if err != nil {
		return nil, fmt.Errorf("signal-with-start journey of %s: %w", in.CustomerID, err)
	}
	return run, nil
}

// ErrJourneyEnded means the customer's journey has ended (unsubscribed, erased,
// churned under a campaign that ends journeys there, or pending without a
// signup for too long). Events are not applied to an ended journey and do
// not start a new one — otherwise a late event (a second unsubscribe click)
// would start a fresh journey in `pending`; a new signup starts a new one.
var ErrJourneyEnded = errors.New("the customer's journey has ended; a new signup starts a new journey")

// eventOptions are the start options of a journey that an event creates:
// none while the customer's last journey ended normally (completed); a
// journey that failed or was terminated by an operator may be restarted by
// an event.
func (s Starter) eventOptions(customerID string) client.StartWorkflowOptions {
	opts := s.options(customerID)
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
	return opts
}

// ended turns Temporal's "already started" (the reuse policy refused a new
// run after a completed one) into ErrJourneyEnded.
func ended(customerID string, err error) error {
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return fmt.Errorf("journey of %s: %w", customerID, ErrJourneyEnded)
	}
	return err
}

// Events delivers events (one signal for the batch) to the customer's
// journey, starting a pending journey when none runs yet; ErrJourneyEnded
// when the customer's journey has ended.
func (s Starter) Events(ctx context.Context, customerID string, events ...Event) error {
	if err := ValidateCustomerID(customerID); err != nil {
		return err
	}
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	var payload any = events
	if len(events) == 1 {
		payload = events[0]
	}
	// Nearly every event goes to a running journey: a plain signal costs
	// the server less than signal-with-start, which validates the start
	// options (search attributes, summary) on every call even when the
	// journey runs. Only when no journey runs does
	// the event take the signal-with-start path, whose reuse policy tells
	// an ended journey from one never started.
	err := s.Client.SignalWorkflow(ctx, JourneyID(customerID), "", SignalEvent, payload)
	var notRunning *serviceerror.NotFound
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &notRunning):
		return fmt.Errorf("signal journey of %s: %w", customerID, err)
	}
	_, err = s.Client.SignalWithStartWorkflow(ctx, JourneyID(customerID), SignalEvent, payload,
		s.eventOptions(customerID), WorkflowName, s.input(customerID))
	if err != nil {
		return fmt.Errorf("signal-with-start journey of %s: %w", customerID, ended(customerID, err))
	}
	return nil
}

// ApplyEvent delivers one event as an update and returns the journey's view
// after it was applied (update-with-start: a journey is created, pending,
// when none runs yet); ErrJourneyEnded when the customer's journey has
// ended.
func (s Starter) ApplyEvent(ctx context.Context, customerID string, e Event) (JourneyView, error) {
	var v JourneyView
	if err := ValidateCustomerID(customerID); err != nil {
		return v, err
	}
	if err := e.Validate(); err != nil {
		return v, fmt.Errorf("event: %w", err)
	}
	opts := s.eventOptions(customerID)
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	op := s.Client.NewWithStartWorkflowOperation(opts, WorkflowName, s.input(customerID))
	h, err := s.Client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: UpdateEvent, Args: []any{e}, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return v, fmt.Errorf("update-with-start journey of %s: %w", customerID, ended(customerID, err))
	}
	if err := h.Get(ctx, &v); err != nil {
		return v, fmt.Errorf("apply event %s to journey of %s: %w", e.ID, customerID, err)
	}
	return v, nil
}

// State queries a journey.
func State(ctx context.Context, c client.Client, customerID string) (JourneyView, error) {
	var v JourneyView
	res, err := c.QueryWorkflow(ctx, JourneyID(customerID), "", QueryState)
	if err != nil {
		return v, fmt.Errorf("query journey of %s: %w", customerID, err)
	}
	if err := res.Get(&v); err != nil {
		return v, fmt.Errorf("decode journey state of %s: %w", customerID, err)
	}
	return v, nil
}

// TerminateJourney ends the customer's running journey at once (an erase:
// no further step, send or CRM write of it may happen) and reports whether
// one was running. reason is written into the history: no personal data.
func (s Starter) TerminateJourney(ctx context.Context, customerID, reason string) (bool, error) {
	err := s.Client.TerminateWorkflow(ctx, JourneyID(customerID), "", reason)
	var notFound *serviceerror.NotFound
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &notFound):
		return false, nil // ended before, or never started
	default:
		return false, fmt.Errorf("terminate journey of %s: %w", customerID, err)
	}
}
