package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/lifecycle/erasure"
)

// EraseRequest is the body of DELETE /v1/customers/{id}. The body repeats
// the customer id and states the action because the signature covers the
// body only: a captured signature of an empty-bodied request (a journey
// read) or of a signup cannot be turned into an erase.
type EraseRequest struct {
	// Action must be "erase".
	Action string `json:"action"`
	// CustomerID must equal the id in the path.
	CustomerID string `json:"customer_id"`
	// RequestedBy says who asked, for the audit log (an operator, a
	// ticket, a system); "api" when empty. No personal data of the
	// customer.
	RequestedBy string `json:"requested_by,omitempty"`
}

// eraseInBatch rejects an erase event inside a batch: an erase ends the
// journey and destroys keys, and is answered on its own.
const eraseInBatch = "an erase event must be sent alone (not in a batch), or as DELETE /v1/customers/{id}"

// deleteCustomer: DELETE /v1/customers/{id} with an EraseRequest.
func (s *server) deleteCustomer(w http.ResponseWriter, r *http.Request) {
	var in EraseRequest
	if !readJSON(w, r, &in) {
		return
	}
	id := r.PathValue("id")
	switch {
	case in.Action != "erase":
		writeError(w, http.StatusBadRequest, ErrorResponse{Field: "action", Error: `action: must be "erase"`})
		return
	case in.CustomerID != id:
		writeError(w, http.StatusBadRequest, ErrorResponse{Field: "customer_id",
			Error: fmt.Sprintf("customer_id: %q does not match the customer in the path (%q)", in.CustomerID, id)})
		return
	}
	by := in.RequestedBy
	if by == "" {
		by = "api"
	}
	if res, ok := s.eraseAs(w, r, id, by); ok {
		writeJSON(w, http.StatusOK, res)
	}
}

// erase answers an erase event of POST /v1/events as the endpoint answers
// every event (202), once the erase is done.
func (s *server) erase(w http.ResponseWriter, r *http.Request, customerID string) {
	if _, ok := s.eraseAs(w, r, customerID, "api (erase event)"); ok {
		writeJSON(w, http.StatusAccepted, EventsResponse{Accepted: 1, Rejected: []ItemError{}, Failed: []ItemError{}, Warnings: []ItemWarning{}})
	}
}

// eraseAs runs the erase; when it fails it answers the request and
// reports false.
func (s *server) eraseAs(w http.ResponseWriter, r *http.Request, customerID, requestedBy string) (erasure.Result, bool) {
	if s.eraser == nil {
		s.unavailable(w, "erase is not available: this API runs without the CRM database")
		return erasure.Result{}, false
	}
	ctx, cancel := s.temporalContext(r)
	defer cancel()
	res, err := s.eraser.Erase(ctx, erasure.Request{CustomerID: customerID, RequestedBy: requestedBy})
	switch {
	case errors.Is(err, erasure.ErrInvalid):
		writeError(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
		return res, false
	case err != nil:
		s.log.ErrorContext(r.Context(), "erase not finished", "customer_id", customerID, "error", err)
		s.unavailable(w, "the erase did not finish (Temporal or the CRM database unavailable); it is safe to retry, and nothing is recorded as erased until it does")
		return res, false
	}
	s.log.InfoContext(r.Context(), "customer erased", "customer_id", customerID, "journey", res.Journey, "audit_id", res.AuditID)
	return res, true
}
