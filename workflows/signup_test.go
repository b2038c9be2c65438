package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/customer/customertest"
)

// The signup carries the customer's profile, field for field and under the
// same JSON names (the API's and those recorded in journey histories).
func TestSignupHoldsTheProfile(t *testing.T) {
	customertest.RequireProfileFields(t, Signup.Profile, nil)
	customertest.RequireProfileFields(t, func(s Signup) customer.Profile {
		return SignupOf(s.Profile(), time.Time{}).Profile()
	}, nil)

	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	p := customer.Profile{CustomerID: "c1", Email: "c1@example.com", FirstName: "Ada", LeadSource: customer.LeadReferral}
	s := SignupOf(p, at)
	assert.Equal(t, p, s.Profile())
	assert.Equal(t, at, s.At)
}
