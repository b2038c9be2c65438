package api

import (
	"errors"
	"io"
	"net/http"
	"net/mail"

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
	if e := requireJSON(r); e != nil {
		writeError(w, http.StatusUnsupportedMediaType, *e)
		return
	}
	body, _ := io.ReadAll(r.Body) // already read and limited by authenticated
	var in workflows.Signup
	if e := decodeJSON(body, &in); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	if err := validateSignup(in); err != nil {
		writeError(w, http.StatusBadRequest, *validationError(err, signupFields))
		return
	}
	ctx, cancel := s.temporalContext(r)
	defer cancel()
	run, err := s.starter.Signup(ctx, in)
	if err != nil {
		s.log.ErrorContext(r.Context(), "signup not accepted by Temporal", "customer_id", in.CustomerID, "error", err)
		s.unavailable(w, "the journey service did not accept the signup (Temporal unavailable); nothing was recorded, retry later")
		return
	}
	writeJSON(w, http.StatusAccepted, SignupResponse{
		CustomerID: in.CustomerID, JourneyID: run.GetID(), RunID: run.GetRunID(),
	})
}

// validateSignup is workflows.Signup.Validate plus the address checks the
// CRM applies later (crm.Contact: bare addresses only), so that a signup
// the CRM would refuse is refused here, with the field named, instead of
// failing inside the journey.
func validateSignup(in workflows.Signup) error {
	var errs []error
	if err := in.Validate(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		} else {
			errs = append(errs, err)
		}
	}
	if !hasFieldError(errs, "email") && !bareAddress(in.Email) {
		errs = append(errs, errors.New("email: must be a bare email address, like name@example.com"))
	}
	if in.OwnerEmail != "" && !bareAddress(in.OwnerEmail) {
		errs = append(errs, errors.New("owner_email: must be a bare email address, like sales@example.com"))
	}
	return errors.Join(errs...)
}

func hasFieldError(errs []error, field string) bool {
	for _, e := range errs {
		if fieldOf(e.Error(), signupFields) == field {
			return true
		}
	}
	return false
}

func bareAddress(v string) bool {
	a, err := mail.ParseAddress(v)
	return err == nil && a.Name == "" && a.Address == v
}
