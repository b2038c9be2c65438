package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/privacy"
	"github.com/acme/lifecycle/workflows"
)

// TagsRequest is the body of POST /v1/customers/{id}/tags.
type TagsRequest struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// TagsResponse answers an accepted tag change.
type TagsResponse struct {
	CustomerID string `json:"customer_id"`
	// AppliedBy is "journey" (the customer's journey applies it and writes
	// it to the CRM) or "crm" (no journey runs: written to the CRM
	// directly).
	AppliedBy string `json:"applied_by"`
	// EventID is the id of the tags_changed event sent to the journey.
	EventID string `json:"event_id,omitempty"`
}

// postTags: POST /v1/customers/{id}/tags. A running journey applies the
// change (so its state and the CRM agree, in order with its other writes);
// when none runs, the CRM contact is changed directly.
func (s *server) postTags(w http.ResponseWriter, r *http.Request) {
	var in TagsRequest
	if !readJSON(w, r, &in) {
		return
	}
	id := r.PathValue("id")
	err := errors.Join(workflows.ValidateCustomerID(id),
		customer.CheckTags("add", in.Add), customer.CheckTags("remove", in.Remove))
	if err == nil && len(in.Add)+len(in.Remove) == 0 {
		err = errors.New("add: give at least one tag to add or to remove")
	}
	if err != nil {
		e := validationError(err, map[string]bool{"add": true, "remove": true})
		// Name the tag: "add[1]", as the rule does.
		if fe := (*customer.FieldError)(nil); errors.As(err, &fe) && e.Field == "" {
			e.Field = fe.Field
		}
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	// Every change is an event of its own: a set change is idempotent, so
	// a retried request that becomes a second event changes nothing more.
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	ev := workflows.Event{ID: "tags-" + hex.EncodeToString(nonce[:]), Type: customer.EventTagsChanged, At: s.now(),
		Properties: map[string]any{}}
	if len(in.Add) > 0 {
		ev.Properties[customer.PropertyTags] = in.Add
	}
	if len(in.Remove) > 0 {
		ev.Properties[customer.PropertyRemoveTags] = in.Remove
	}
	ctx, cancel := s.temporalContext(r)
	defer cancel()
	err = s.starter.Events(ctx, id, ev)
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, TagsResponse{CustomerID: id, AppliedBy: "journey", EventID: ev.ID})
	case errors.Is(err, privacy.ErrShredded):
		writeError(w, http.StatusConflict, ErrorResponse{Field: "customer_id", Error: journeyEnded})
	case errors.Is(err, workflows.ErrJourneyEnded):
		s.tagContact(w, r, id, in)
	default:
		s.log.ErrorContext(r.Context(), "tags not accepted by Temporal", "customer_id", id, "error", err)
		s.unavailable(w, "the journey service did not accept the tags (Temporal unavailable); nothing was recorded, retry later")
	}
}

// tagContact changes the CRM contact of a customer without a running
// journey.
func (s *server) tagContact(w http.ResponseWriter, r *http.Request, id string, in TagsRequest) {
	if s.crm == nil {
		s.unavailable(w, "the customer has no running journey, and this API runs without the CRM database")
		return
	}
	err := s.crm.SetTags(r.Context(), id, in.Add, in.Remove)
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, TagsResponse{CustomerID: id, AppliedBy: "crm"})
	case errors.Is(err, crm.ErrNotFound):
		writeError(w, http.StatusNotFound, ErrorResponse{Field: "customer_id", Error: "customer_id: no such customer"})
	case errors.Is(err, crm.ErrErased):
		writeError(w, http.StatusConflict, ErrorResponse{Field: "customer_id", Error: "customer_id: the customer was erased"})
	case errors.Is(err, crm.ErrInvalid):
		writeError(w, http.StatusBadRequest, ErrorResponse{Field: "add", Error: err.Error()})
	default:
		s.log.ErrorContext(r.Context(), "tags not written to the CRM", "customer_id", id, "error", err)
		s.unavailable(w, "the CRM database did not answer; nothing was recorded, retry later")
	}
}
