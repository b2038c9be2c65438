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

// Lead sources, most trusted first (the six trust levels of the product
// brief).
const (
	LeadCurrentCustomer = customer.LeadCurrentCustomer
	LeadReferral        = customer.LeadReferral
	LeadConnected       = customer.LeadConnected
	LeadExpert          = customer.LeadExpert
	LeadSearchAds       = customer.LeadSearchAds
	LeadCold            = customer.LeadCold
)

// LeadSources lists the valid lead sources, most trusted first.
var LeadSources = slices.Clone(customer.LeadSources)

// Journey stages (the JourneyStage search attribute) and the two exits.
const (
	// StagePending: events arrived before the signup (see workflows).
	StagePending      = "pending"
	StageTrial        = "trial"
	StageNurture      = "nurture"
	StageSales        = "sales"
	StageOnboarding   = "onboarding"
	StageActive       = "active"
	StageAtRisk       = "at_risk"
	StageChurned      = "churned"
	StageUnsubscribed = "unsubscribed"
	StageErased       = "erased"
)

// Stages lists the valid stages.
var Stages = []string{StagePending, StageTrial, StageNurture, StageSales, StageOnboarding, StageActive, StageAtRisk, StageChurned, StageUnsubscribed, StageErased}

// Handoff statuses.
const (
	HandoffOpen      = "open"
	HandoffAccepted  = "accepted"
	HandoffEscalated = "escalated"
	HandoffWon       = "won"
	HandoffLost      = "lost"
	HandoffRejected  = "rejected"
)

// HandoffStatuses lists the valid handoff statuses.
var HandoffStatuses = []string{HandoffOpen, HandoffAccepted, HandoffEscalated, HandoffWon, HandoffLost, HandoffRejected}

// Task statuses and the task kinds this project creates. Kind is not
// limited to these: any lower_snake_case word is accepted.
const (
	TaskOpen      = "open"
	TaskDone      = "done"
	TaskCancelled = "cancelled"

	TaskChurnWarning      = "churn_warning"
	TaskHandoffEscalation = "handoff_escalation"
	TaskFollowUp          = "follow_up"
)

// TaskStatuses lists the valid task statuses.
var TaskStatuses = []string{TaskOpen, TaskDone, TaskCancelled}

// Email categories: marketing mail needs consent and stops at unsubscribe;
// transactional mail (receipts, owner notifications) does not.
const (
	CategoryMarketing     = "marketing"
	CategoryTransactional = "transactional"
)

// Suppression reasons. Only ReasonUnsubscribed still allows transactional
// mail; every other reason blocks all mail to the address.
const (
	ReasonUnsubscribed = "unsubscribed"
	ReasonBounced      = "bounced"
	ReasonComplained   = "complained"
	ReasonErased       = "erased"
	ReasonInvalid      = "invalid"
)

// SuppressionReasons lists the valid suppression reasons, weakest first: a
// suppression is only ever replaced by a stronger reason.
var SuppressionReasons = []string{ReasonUnsubscribed, ReasonInvalid, ReasonBounced, ReasonComplained, ReasonErased}

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

func validTimeZone(field, v string) error {
	return rule(customer.CheckTimeZone(field, v))
}

func validStage(field, v string, allowEmpty bool) error {
	if v == "" && allowEmpty {
		return nil
	}
	return requireOneOf(field, v, Stages)
}
