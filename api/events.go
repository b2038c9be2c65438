package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/privacy"
	"github.com/acme/lifecycle/workflows"
)

// Event is one event of POST /v1/events: a workflows.Event and the
// customer it happened to.
type Event struct {
	CustomerID string         `json:"customer_id"`
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	At         time.Time      `json:"at,omitzero"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Journey returns the event as the journey receives it.
func (e Event) Journey() workflows.Event {
	return workflows.Event{ID: e.ID, Type: e.Type, At: e.At, Properties: e.Properties}
}

// Validate returns one error per bad field, customer_id first, by the
// journey's own rules (package customer).
func (e Event) Validate() error {
	return errors.Join(workflows.ValidateCustomerID(e.CustomerID), e.Journey().Validate())
}

// EventBatch is the batch form of POST /v1/events: 1 to MaxBatch events,
// for any number of customers.
type EventBatch struct {
	Events []Event `json:"events"`
}

// EventsResponse is the answer of POST /v1/events (for a single event
// too, when it was accepted).
type EventsResponse struct {
	// Accepted counts the events Temporal accepted (delivered to their
	// journeys with signal-with-start).
	Accepted int `json:"accepted"`
	// Rejected are the invalid events, by index in the batch (0 for a
	// single event); they were not sent and resending them unchanged will
	// not help.
	Rejected []ItemError `json:"rejected"`
	// Failed are valid events that could not be delivered because
	// Temporal did not answer; retry them (or the whole batch: journeys
	// deduplicate events by id).
	Failed []ItemError `json:"failed"`
	// Warnings are about accepted events, such as an unknown type.
	Warnings []ItemWarning `json:"warnings"`
}

// ItemError is a rejected or failed event of a batch.
type ItemError struct {
	Index      int    `json:"index"`
	CustomerID string `json:"customer_id,omitempty"`
	Field      string `json:"field,omitempty"`
	Error      string `json:"error"`
}

// ItemWarning is a remark about an accepted event.
type ItemWarning struct {
	Index   int    `json:"index"`
	Field   string `json:"field,omitempty"`
	Warning string `json:"warning"`
}

var eventFields = jsonFields(Event{})

// journeyEnded explains an event for an ended journey.
const journeyEnded = "the customer's journey has ended (unsubscribed, erased, or finished); events are not applied to it and do not start a new one — a new signup does"

// postEvents: POST /v1/events with one Event or an EventBatch.
//
// Batch semantics: every event is decoded and validated first; invalid
// events are reported in "rejected" (index, field, error) and not sent;
// the valid ones are grouped per customer and each customer's events go
// to its journey in one signal-with-start (in batch order; the journey
// orders them by "at"). Events whose customer's signal Temporal did not
// accept are reported in "failed" and never counted as accepted.
//
// Status: 202 all accepted; 207 some accepted, some rejected; 400 none
// accepted because all were rejected (or the batch itself is malformed);
// 503 with Retry-After when any event failed. An event for a customer whose
// journey has ended is rejected (a single one with 409): it is not applied
// and starts no new journey.
func (s *server) postEvents(w http.ResponseWriter, r *http.Request) {
	if e := requireJSON(r); e != nil {
		writeError(w, http.StatusUnsupportedMediaType, *e)
		return
	}
	body, _ := io.ReadAll(r.Body) // already read and limited by authenticated
	// The batch's shape is decoded without the UTF-8 check, which is made
	// per event: a bad byte in one event must not reject the others.
	var probe map[string]json.RawMessage
	if e := decodeJSONShape(body, &probe); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if _, isBatch := probe["events"]; isBatch {
		s.postBatch(w, r, body)
		return
	}
	var ev Event
	if e := decodeJSON(body, &ev); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if err := ev.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, *validationError(err, eventFields))
		return
	}
	if ev.Type == customer.EventErase {
		// An erase is not a journey event: it must work whether the
		// journey runs, ended or never started (erase.go).
		s.erase(w, r, ev.CustomerID)
		return
	}
	res := EventsResponse{Rejected: []ItemError{}, Failed: []ItemError{}, Warnings: warnings(0, ev)}
	ctx, cancel := s.temporalContext(r)
	defer cancel()
	// An erased customer's journey has ended, and its data key is gone.
	if err := s.starter.Events(ctx, ev.CustomerID, ev.Journey()); errors.Is(err, workflows.ErrJourneyEnded) || errors.Is(err, privacy.ErrShredded) {
		writeError(w, http.StatusConflict, ErrorResponse{Field: "customer_id", Error: journeyEnded})
		return
	} else if err != nil {
		s.log.ErrorContext(r.Context(), "event not accepted by Temporal", "customer_id", ev.CustomerID, "event_id", ev.ID, "error", err)
		s.unavailable(w, "the journey service did not accept the event (Temporal unavailable); nothing was recorded, retry later")
		return
	}
	res.Accepted = 1
	writeJSON(w, http.StatusAccepted, res)
}

func (s *server) postBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	var batch struct {
		Events []json.RawMessage `json:"events"`
	}
	if e := decodeJSONShape(body, &batch); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if len(batch.Events) == 0 {
		writeError(w, http.StatusBadRequest, ErrorResponse{Field: "events", Error: "events: must be an array of 1 to 1000 events"})
		return
	}
	if len(batch.Events) > MaxBatch {
		writeError(w, http.StatusBadRequest, ErrorResponse{Field: "events",
			Error: fmt.Sprintf("events: at most %d events per request (got %d); split the batch", MaxBatch, len(batch.Events))})
		return
	}

	res := EventsResponse{Rejected: []ItemError{}, Failed: []ItemError{}, Warnings: []ItemWarning{}}
	type group struct {
		customerID string
		indexes    []int
		events     []workflows.Event
	}
	var groups []*group
	byCustomer := map[string]*group{}
	seenIDs := map[[2]string]int{}
	for i, raw := range batch.Events {
		var ev Event
		if e := decodeJSON(raw, &ev); e != nil {
			res.Rejected = append(res.Rejected, ItemError{Index: i, Field: e.Field, Error: e.Error})
			continue
		}
		if err := ev.Validate(); err != nil {
			e := validationError(err, eventFields)
			res.Rejected = append(res.Rejected, ItemError{Index: i, CustomerID: ev.CustomerID, Field: e.Field, Error: e.Error})
			continue
		}
		if ev.Type == customer.EventErase {
			res.Rejected = append(res.Rejected, ItemError{Index: i, CustomerID: ev.CustomerID, Field: "type", Error: eraseInBatch})
			continue
		}
		res.Warnings = append(res.Warnings, warnings(i, ev)...)
		key := [2]string{ev.CustomerID, ev.ID}
		if first, dup := seenIDs[key]; dup {
			res.Warnings = append(res.Warnings, ItemWarning{Index: i, Field: "id",
				Warning: fmt.Sprintf("same customer and id as event %d: the journey counts the event once", first)})
		} else {
			seenIDs[key] = i
		}
		g := byCustomer[ev.CustomerID]
		if g == nil {
			g = &group{customerID: ev.CustomerID}
			byCustomer[ev.CustomerID] = g
			groups = append(groups, g)
		}
		g.indexes = append(g.indexes, i)
		g.events = append(g.events, ev.Journey())
	}

	// One signal-with-start per customer, a bounded number at a time.
	errs := make([]error, len(groups))
	sem := make(chan struct{}, sendConcurrency)
	var wg sync.WaitGroup
	for gi, g := range groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := s.temporalContext(r)
			defer cancel()
			errs[gi] = s.starter.Events(ctx, g.customerID, g.events...)
		}()
	}
	wg.Wait()
	for gi, g := range groups {
		if errors.Is(errs[gi], workflows.ErrJourneyEnded) || errors.Is(errs[gi], privacy.ErrShredded) {
			for _, i := range g.indexes {
				res.Rejected = append(res.Rejected, ItemError{Index: i, CustomerID: g.customerID, Field: "customer_id", Error: journeyEnded})
			}
			continue
		}
		if err := errs[gi]; err != nil {
			s.log.ErrorContext(r.Context(), "events not accepted by Temporal", "customer_id", g.customerID, "events", len(g.events), "error", err)
			for _, i := range g.indexes {
				res.Failed = append(res.Failed, ItemError{Index: i, CustomerID: g.customerID,
					Error: "not delivered: the journey service (Temporal) did not accept the signal; retry"})
			}
			continue
		}
		res.Accepted += len(g.events)
	}
	// Groups are in order of first appearance: their indexes interleave.
	slices.SortFunc(res.Failed, func(a, b ItemError) int { return cmp.Compare(a.Index, b.Index) })
	slices.SortFunc(res.Rejected, func(a, b ItemError) int { return cmp.Compare(a.Index, b.Index) })

	switch {
	case len(res.Failed) > 0:
		s.setRetryAfter(w)
		writeJSON(w, http.StatusServiceUnavailable, res)
	case len(res.Rejected) == 0:
		writeJSON(w, http.StatusAccepted, res)
	case res.Accepted == 0:
		writeJSON(w, http.StatusBadRequest, res)
	default:
		writeJSON(w, http.StatusMultiStatus, res)
	}
}

// warnings are the remarks about a valid event.
func warnings(index int, ev Event) []ItemWarning {
	if customer.IsKnownEvent(ev.Type) {
		return []ItemWarning{}
	}
	return []ItemWarning{{Index: index, Field: "type", Warning: fmt.Sprintf(
		"unknown event type %q: accepted and recorded; the journey ignores it unless its campaign scores it", ev.Type)}}
}
