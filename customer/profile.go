package customer

import "errors"

// Profile is who a customer is: what a signup carries, the journey keeps
// and the CRM stores. It is the one definition of a contact's fields; the
// other shapes of a contact are built from it (activities.Contact embeds
// it; workflows.Signup, crm.Contact and simulate.Customer hold its fields
// and return it from their Profile method, and their tests keep the fields
// the same).
//
// The JSON names are the HTTP API's and those recorded in journey
// histories (signals, journey state, activity inputs): renaming one would
// break the replay of running journeys.
type Profile struct {
	CustomerID  string `json:"customer_id"`
	Email       string `json:"email"`
	FirstName   string `json:"first_name,omitempty"`
	LastName    string `json:"last_name,omitempty"`
	Company     string `json:"company,omitempty"`
	Role        string `json:"role,omitempty"`
	CompanySize int    `json:"company_size,omitempty"`
	TimeZone    string `json:"time_zone,omitempty"`
	LeadSource  string `json:"lead_source,omitempty"`
	OwnerEmail  string `json:"owner_email,omitempty"`
}

// Validate returns one *FieldError per bad field, joined (errors.Join), in
// the order of the fields; fields are named by their JSON names.
func (p Profile) Validate() error {
	errs := []error{
		CheckCustomerID("customer_id", p.CustomerID),
		CheckEmail("email", p.Email),
		CheckName("first_name", p.FirstName),
		CheckName("last_name", p.LastName),
		CheckCompany("company", p.Company),
		CheckName("role", p.Role),
		CheckCompanySize("company_size", p.CompanySize),
		CheckTimeZone("time_zone", p.TimeZone),
		CheckLeadSource("lead_source", p.LeadSource),
	}
	if p.OwnerEmail != "" {
		errs = append(errs, CheckEmail("owner_email", p.OwnerEmail))
	}
	return errors.Join(errs...)
}
