package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/lifecycle/privacy"

	"github.com/acme/lifecycle/workflows"
)

// SignupResponse is the answer to an accepted signup.
type SignupResponse struct {
	CustomerID string `json:"customer_id"`
	// JourneyID is the workflow ID of the customer's journey.
	JourneyID string `json:"journey_id"`
	// RunID is the journey's run that received the signup (a journey
	// continues as new at stage boundaries, so later runs have other IDs).
	RunID string `json:"run_id"`
}

var signupFields = jsonFields(workflows.Signup{})

// postSignup: POST /v1/signups with a workflows.Signup.
func (s *server) postSignup(w http.ResponseWriter, r *http.Request) {
	var in workflows.Signup
	if !readJSON(w, r, &in) {
		return
	}
	// The journey's own rule (package customer): a signup accepted here is
	// one the journey, the CRM and the mailer accept.
	if err := in.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, *validationError(err, signupFields))
		return
	}
	ctx, cancel := s.temporalContext(r)
	defer cancel()
	run, err := s.starter.Signup(ctx, in)
	if errors.Is(err, privacy.ErrShredded) {
		// The customer id was erased: its data key is destroyed, and the
		// person cannot be brought back under it.
		writeError(w, http.StatusGone, ErrorResponse{Field: "customer_id",
			Error: fmt.Sprintf("customer_id: customer %q was erased; a new signup needs a new customer id", in.CustomerID)})
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "signup not accepted by Temporal", "customer_id", in.CustomerID, "error", err)
		s.unavailable(w, "the journey service did not accept the signup (Temporal unavailable); nothing was recorded, retry later")
		return
	}
	writeJSON(w, http.StatusAccepted, SignupResponse{
		CustomerID: in.CustomerID, JourneyID: run.GetID(), RunID: run.GetRunID(),
	})
}
