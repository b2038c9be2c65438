package activities_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/customer"
)

// A contact write is carried in journey histories: built from
// customer.Profile, it keeps the JSON it had as a flat struct, so recorded
// histories decode into it and new ones read the same.
func TestContactJSONIsTheRecordedShape(t *testing.T) {
	c := activities.Contact{
		Profile: customer.Profile{CustomerID: "c1", Email: "c1@example.com", FirstName: "Ada", LastName: "L",
			Company: "AE", Role: "cto", CompanySize: 5, TimeZone: "UTC", LeadSource: customer.LeadReferral,
			OwnerEmail: "o@example.com"},
		DeliveryOwnerEmail: "d@example.com", CampaignID: "saas", CampaignVersion: "v1",
	}
	b, err := json.Marshal(c)
	require.NoError(t, err)
	assert.JSONEq(t, `{"customer_id":"c1","email":"c1@example.com","first_name":"Ada","last_name":"L","company":"AE",
		"role":"cto","company_size":5,"time_zone":"UTC","lead_source":"referral","owner_email":"o@example.com",
		"delivery_owner_email":"d@example.com","campaign_id":"saas","campaign_version":"v1"}`, string(b))

	b, err = json.Marshal(activities.Contact{Profile: customer.Profile{CustomerID: "c2"}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"customer_id":"c2","email":""}`, string(b), "the optional fields are left out, as before")

	var back activities.Contact
	require.NoError(t, json.Unmarshal([]byte(`{"customer_id":"c3","email":"c3@example.com","lead_source":"cold","campaign_id":"saas"}`), &back))
	assert.Equal(t, "c3", back.CustomerID)
	assert.Equal(t, "cold", back.LeadSource)
	assert.Equal(t, "saas", back.CampaignID)
}
