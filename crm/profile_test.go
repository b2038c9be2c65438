package crm_test

import (
	"testing"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer/customertest"
)

// The CRM row holds the customer's profile, field for field.
func TestContactHoldsTheProfile(t *testing.T) {
	customertest.RequireProfileFields(t, crm.Contact.Profile, nil)
}
