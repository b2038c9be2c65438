package privacy

import (
	"strings"

	"github.com/acme/lifecycle/customer"
)

// SystemSubject is the subject of payloads that belong to no one customer:
// broadcasts, schedules, and calls made without a workflow context (a
// client's Encode without WithSerializationContext). Its key is never
// shredded by a customer's erasure: no customer may have its id
// (customer.CheckCustomerID refuses it).
const SystemSubject = customer.ReservedCustomerID

// journeyPrefix starts the workflow ID of a customer's journey
// (workflows.JourneyID); it is repeated here rather than imported so that
// this package depends on no workflow code.
const journeyPrefix = "journey/"

// SubjectOf maps a workflow ID to the subject whose data key encrypts the
// workflow's payloads (and those of its activities): "journey/<customer
// id>" gives the customer id; any other ID, and "", gives SystemSubject.
func SubjectOf(workflowID string) string {
	id, ok := strings.CutPrefix(workflowID, journeyPrefix)
	if !ok || id == "" {
		return SystemSubject
	}
	return id
}
