package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/crm"
)

// CRMWrite is one write a journey makes to the CRM; exactly one field is
// set. A journey keeps its writes in order and sends them in batches
// (WriteCRM), so that a database outage delays them but loses none.
type CRMWrite struct {
	Contact       *Contact            `json:"contact,omitempty"`
	Events        *RecordEventsInput  `json:"events,omitempty"`
	Transition    *TransitionInput    `json:"transition,omitempty"`
	Score         *ScoreInput         `json:"score,omitempty"`
	Handoff       *HandoffInput       `json:"handoff,omitempty"`
	HandoffStatus *HandoffStatusInput `json:"handoff_status,omitempty"`
	Task          *TaskInput          `json:"task,omitempty"`
	Suppress      *SuppressInput      `json:"suppress,omitempty"`
	Erase         *EraseInput         `json:"erase,omitempty"`
	Tags          *TagsInput          `json:"tags,omitempty"`
}

// Op names the kind of write (for logs, metrics and the journey's timeline).
func (w CRMWrite) Op() string {
	switch {
	case w.Contact != nil:
		return "contact"
	case w.Events != nil:
		return "events"
	case w.Transition != nil:
		return "transition"
	case w.Score != nil:
		return "score"
	case w.Handoff != nil:
		return "handoff"
	case w.HandoffStatus != nil:
		return "handoff_status"
	case w.Task != nil:
		return "task"
	case w.Suppress != nil:
		return "suppress"
	case w.Erase != nil:
		return "erase"
	case w.Tags != nil:
		return "tags"
	}
	return "empty"
}

// WriteCRMInput is a batch of one customer's CRM writes, in the order they
// must be made.
type WriteCRMInput struct {
	CustomerID string     `json:"customer_id"`
	Writes     []CRMWrite `json:"writes"`
}

// WriteCRMResult says what became of a batch.
type WriteCRMResult struct {
	// Done counts the writes handled from the start of the batch, made or
	// rejected: all of them unless Stopped.
	Done int `json:"done"`
	// Rejected are the writes the CRM refused for good (bad input, an
	// erased customer), by index in the batch. They are not retried.
	Rejected []RejectedWrite `json:"rejected,omitempty"`
	// New lists the new event ids of the first Events write that has
	// StopUnlessAllNew set, and Stopped says the batch stopped right after
	// it because not all of them were new.
	New     []string `json:"new,omitempty"`
	Stopped bool     `json:"stopped,omitempty"`
}

// RejectedWrite is a write the CRM refused for good.
type RejectedWrite struct {
	Index  int    `json:"index"`
	Op     string `json:"op"`
	Reason string `json:"reason"`
}

// JourneyActivities are the activities the journey calls. The worker's
// Activities is one; the workflow tests and simulate have in-memory ones
// (registered by name, so the method sets must match: the compiler checks
// them against this interface).
type JourneyActivities interface {
	LoadCampaign(ctx context.Context, in LoadCampaignInput) (*campaign.Campaign, error)
	WriteCRM(ctx context.Context, in WriteCRMInput) (WriteCRMResult, error)
	SendEmail(ctx context.Context, in SendEmailInput) (SendEmailResult, error)
}

var _ JourneyActivities = (*Activities)(nil)

// CRMWriter makes each kind of CRM write. Errors that retrying cannot fix
// are non-retryable Temporal application errors (type ErrBadInput); any
// other error means "try again later". The real one writes to PostgreSQL;
// workflow tests and simulate have in-memory ones.
type CRMWriter interface {
	UpsertContact(ctx context.Context, in Contact) error
	RecordEvents(ctx context.Context, in RecordEventsInput) (RecordEventsResult, error)
	RecordTransition(ctx context.Context, in TransitionInput) error
	RecordScore(ctx context.Context, in ScoreInput) error
	CreateHandoff(ctx context.Context, in HandoffInput) error
	SetHandoffStatus(ctx context.Context, in HandoffStatusInput) error
	CreateTask(ctx context.Context, in TaskInput) error
	Suppress(ctx context.Context, in SuppressInput) error
	EraseContact(ctx context.Context, in EraseInput) error
	SetTags(ctx context.Context, in TagsInput) error
}

// ApplyWrites makes a batch of writes in order with w. A write refused for
// good is listed in Rejected and the batch goes on; any other failure ends
// the call with an error, and the caller sends the whole batch again
// later: every write is idempotent by its key, so what was made before the
// failure is not made twice.
func ApplyWrites(ctx context.Context, w CRMWriter, in WriteCRMInput) (WriteCRMResult, error) {
	var res WriteCRMResult
	watching := true // the first Events write with StopUnlessAllNew decides
	for i, wr := range in.Writes {
		err := applyWrite(ctx, w, wr, func(r RecordEventsResult, events *RecordEventsInput) {
			if !watching || !events.StopUnlessAllNew {
				return
			}
			watching = false
			res.New = r.New
			res.Stopped = len(r.New) < len(events.Events)
		})
		switch {
		case err == nil:
		case isPermanent(err):
			res.Rejected = append(res.Rejected, RejectedWrite{Index: i, Op: wr.Op(), Reason: err.Error()})
		default:
			return WriteCRMResult{}, fmt.Errorf("CRM write %d of %d (%s) for %s: %w", i+1, len(in.Writes), wr.Op(), in.CustomerID, err)
		}
		res.Done = i + 1
		if res.Stopped {
			return res, nil
		}
	}
	return res, nil
}

func applyWrite(ctx context.Context, w CRMWriter, wr CRMWrite, onEvents func(RecordEventsResult, *RecordEventsInput)) error {
	switch {
	case wr.Contact != nil:
		return w.UpsertContact(ctx, *wr.Contact)
	case wr.Events != nil:
		r, err := w.RecordEvents(ctx, *wr.Events)
		if err == nil {
			onEvents(r, wr.Events)
		}
		return err
	case wr.Transition != nil:
		return w.RecordTransition(ctx, *wr.Transition)
	case wr.Score != nil:
		return w.RecordScore(ctx, *wr.Score)
	case wr.Handoff != nil:
		return w.CreateHandoff(ctx, *wr.Handoff)
	case wr.HandoffStatus != nil:
		return w.SetHandoffStatus(ctx, *wr.HandoffStatus)
	case wr.Task != nil:
		return w.CreateTask(ctx, *wr.Task)
	case wr.Suppress != nil:
		return w.Suppress(ctx, *wr.Suppress)
	case wr.Erase != nil:
		return w.EraseContact(ctx, *wr.Erase)
	case wr.Tags != nil:
		return w.SetTags(ctx, *wr.Tags)
	}
	return badInput("CRM write", errors.New("no write set"))
}

func isPermanent(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}

// WriteCRM makes a journey's batch of CRM writes in PostgreSQL (see
// ApplyWrites). The journey runs it as a local activity with a short
// timeout and keeps the batch when it fails: it retries with backoff for as
// long as the database is away, in order, while the journey goes on.
func (a *Activities) WriteCRM(ctx context.Context, in WriteCRMInput) (WriteCRMResult, error) {
	res, err := ApplyWrites(ctx, crmStore{a}, in)
	for _, r := range res.Rejected {
		a.Metrics.crmRejected(r.Op)
	}
	return res, err
}

// crmStore is the CRMWriter on PostgreSQL.
type crmStore struct{ a *Activities }

var _ CRMWriter = crmStore{}

func (w crmStore) UpsertContact(ctx context.Context, in Contact) error {
	err := w.a.CRM.UpsertContact(ctx, crm.Contact{
		CustomerID: in.CustomerID, Email: in.Email, FirstName: in.FirstName, LastName: in.LastName,
		Company: in.Company, Role: in.Role, CompanySize: in.CompanySize, TimeZone: in.TimeZone,
		LeadSource: in.LeadSource, OwnerEmail: in.OwnerEmail, DeliveryOwnerEmail: in.DeliveryOwnerEmail,
		Consent: true, CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion,
	})
	w.a.Metrics.crmWrite("upsert_contact", err)
	return crmError("upsert contact "+in.CustomerID, err)
}

func (w crmStore) RecordEvents(ctx context.Context, in RecordEventsInput) (RecordEventsResult, error) {
	events := make([]crm.Event, len(in.Events))
	for i, e := range in.Events {
		events[i] = crm.Event{ID: e.ID, CustomerID: in.CustomerID, Type: e.Type, OccurredAt: e.At,
			Properties: e.Properties, IgnoredReason: e.IgnoredReason}
	}
	fresh, err := w.a.CRM.RecordNewEvents(ctx, in.Key, events)
	w.a.Metrics.crmWrite("record_events", err)
	if err != nil {
		return RecordEventsResult{}, crmError("record events for "+in.CustomerID, err)
	}
	w.a.Metrics.eventsRecorded(len(fresh), len(events))
	return RecordEventsResult{New: fresh}, nil
}

func (w crmStore) RecordTransition(ctx context.Context, in TransitionInput) error {
	err := w.a.CRM.RecordTransition(ctx, crm.Transition{
		Key: in.Key, CustomerID: in.CustomerID, From: string(in.From), To: string(in.To), Reason: in.Reason,
		CampaignID: in.CampaignID, CampaignVersion: in.CampaignVersion, At: in.At,
		Journey: in.Journey, StageSeq: in.StageSeq,
	})
	w.a.Metrics.crmWrite("record_transition", err)
	return crmError("record transition "+in.Key, err)
}

func (w crmStore) RecordScore(ctx context.Context, in ScoreInput) error {
	err := w.a.CRM.RecordScore(ctx, crm.ScoreEntry{Key: in.Key, CustomerID: in.CustomerID, Score: in.Score,
		Behaviour: in.Behaviour, Fit: in.Fit, Reason: in.Reason, At: in.At})
	w.a.Metrics.crmWrite("record_score", err)
	return crmError("record score "+in.Key, err)
}

func (w crmStore) CreateHandoff(ctx context.Context, in HandoffInput) error {
	reasons := make([]crm.HandoffReason, len(in.Reasons))
	for i, r := range in.Reasons {
		reasons[i] = crm.HandoffReason{EventType: r.Source, Points: r.Points}
	}
	err := w.a.CRM.CreateHandoff(ctx, crm.Handoff{Key: in.Key, CustomerID: in.CustomerID, Score: in.Score,
		Reasons: reasons, OwnerEmail: in.OwnerEmail, SLADueAt: in.SLADue})
	w.a.Metrics.crmWrite("create_handoff", err)
	return crmError("create handoff "+in.Key, err)
}

func (w crmStore) SetHandoffStatus(ctx context.Context, in HandoffStatusInput) error {
	err := w.a.CRM.SetHandoffStatus(ctx, in.Key, in.Status)
	if errors.Is(err, crm.ErrHandoffClosed) {
		// A closed handoff (won/lost) stays closed; a late status is noted
		// by the workflow, not retried.
		return nil
	}
	w.a.Metrics.crmWrite("handoff_status", err)
	return crmError("set handoff "+in.Key+" to "+in.Status, err)
}

func (w crmStore) CreateTask(ctx context.Context, in TaskInput) error {
	err := w.a.CRM.CreateTask(ctx, crm.Task{Key: in.Key, CustomerID: in.CustomerID, OwnerEmail: in.OwnerEmail,
		Kind: in.Kind, Title: in.Title, DueAt: in.DueAt})
	w.a.Metrics.crmWrite("create_task", err)
	return crmError("create task "+in.Key, err)
}

func (w crmStore) Suppress(ctx context.Context, in SuppressInput) error {
	err := w.a.CRM.Suppress(ctx, in.Email, in.CustomerID, in.Reason)
	w.a.Metrics.crmWrite("suppress", err)
	return crmError("suppress "+in.CustomerID, err)
}

func (w crmStore) SetTags(ctx context.Context, in TagsInput) error {
	err := w.a.CRM.SetTags(ctx, in.CustomerID, in.Add, in.Remove)
	w.a.Metrics.crmWrite("tags", err)
	return crmError("set tags of "+in.CustomerID, err)
}

func (w crmStore) EraseContact(ctx context.Context, in EraseInput) error {
	err := w.a.CRM.Erase(ctx, in.CustomerID)
	if errors.Is(err, crm.ErrNotFound) {
		return nil // nothing stored: nothing to erase
	}
	w.a.Metrics.crmWrite("erase", err)
	return crmError("erase "+in.CustomerID, err)
}
