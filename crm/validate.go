package crm

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/acme/lifecycle/customer"
)

// ValidationError reports input that would store garbage. Field is the
// column-style name of the offending field (for a batch, prefixed with its
// index: "events[3].customer_id").
type ValidationError struct {
	Field   string
	Problem string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Problem)
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// rule turns the error of a rule of package customer (the one definition
// of the customer's fields, shared with the API, the journey and the
// mailer) into a *ValidationError. The rules quote short values; the
// private ones (addresses) are cut out, as the CRM's errors end up in logs.
func rule(err error, private ...string) error {
	var fe *customer.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	problem := fe.Problem
	for _, v := range private {
		if v != "" {
			problem = strings.TrimPrefix(problem, fmt.Sprintf("%q: ", v))
		}
	}
	return &ValidationError{Field: fe.Field, Problem: problem}
}

var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func requireText(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "is empty")
	}
	return nil
}

func requireOneOf(field, v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return invalid(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	return nil
}

// validEmail accepts a bare address (customer.CheckEmail); empty only when
// not required.
func validEmail(field, v string, required bool) error {
	if v == "" && !required {
		return nil
	}
	return rule(customer.CheckEmail(field, v), v)
}

// validStage accepts the journey's stages (customer.Stages); empty only
// when allowEmpty.
func validStage(field, v string, allowEmpty bool) error {
	if v == "" && allowEmpty {
		return nil
	}
	if !customer.Stage(v).Valid() {
		return invalid(field, "%q is not one of %s", v, strings.Join(customer.StageNames(), ", "))
	}
	return nil
}
