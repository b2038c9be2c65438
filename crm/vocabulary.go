package crm

import (
	"slices"

	"github.com/acme/lifecycle/customer"
)

// The CRM stores the vocabulary of package customer — stages, lead
// sources, email categories, suppression reasons, handoff and task
// statuses — as text, and its CHECK constraints allow exactly those values
// (TestSchemaAllowsTheVocabulary compares them).
//
// The names below are not a second definition: they are customer's values
// as the plain strings the CRM's rows hold (Contact.Stage, Transition.From
// and To, SendClaim.Category and Segment are text, like their columns), for
// code that fills or compares those fields without a conversion. Each is
// derived from package customer; the lists and checks are customer's.
const (
	StagePending      = string(customer.StagePending)
	StageTrial        = string(customer.StageTrial)
	StageNurture      = string(customer.StageNurture)
	StageSales        = string(customer.StageSales)
	StageOnboarding   = string(customer.StageOnboarding)
	StageActive       = string(customer.StageActive)
	StageAtRisk       = string(customer.StageAtRisk)
	StageChurned      = string(customer.StageChurned)
	StageUnsubscribed = string(customer.StageUnsubscribed)
	StageErased       = string(customer.StageErased)

	LeadCurrentCustomer = customer.LeadCurrentCustomer
	LeadReferral        = customer.LeadReferral
	LeadConnected       = customer.LeadConnected
	LeadExpert          = customer.LeadExpert
	LeadSearchAds       = customer.LeadSearchAds
	LeadCold            = customer.LeadCold

	CategoryMarketing     = string(customer.CategoryMarketing)
	CategoryTransactional = string(customer.CategoryTransactional)

	ReasonUnsubscribed = customer.ReasonUnsubscribed
	ReasonInvalid      = customer.ReasonInvalid
	ReasonBounced      = customer.ReasonBounced
	ReasonComplained   = customer.ReasonComplained
	ReasonErased       = customer.ReasonErased
)

var (
	// Stages is customer.StageNames(), for segments.
	Stages = customer.StageNames()
	// LeadSources is customer.LeadSources, for segments.
	LeadSources = slices.Clone(customer.LeadSources)
)
