package crm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acme/lifecycle/customer"
)

// Contact is a customer's row in the CRM: the customer.Profile (its
// fields, by the same names and types; Profile returns it) and what the
// CRM keeps besides — the delivery owner, consent, the journey's stage,
// score and campaign, timestamps. The profile's fields are not embedded, so
// callers keep writing Contact{CustomerID: ..., Email: ...};
// TestContactHoldsTheProfile keeps the two the same. Stage, Score and the
// campaign are owned by the journey: UpsertContact sets them only when it
// creates the contact; later they change through RecordTransition and
// RecordScore. Tags are written by SetTags only (UpsertContact ignores
// them).
type Contact struct {
	CustomerID  string
	Email       string
	FirstName   string
	LastName    string
	Company     string
	Role        string
	CompanySize int
	// TimeZone is an IANA name ("Europe/Berlin"); empty means unknown.
	TimeZone string
	// LeadSource is one of customer.LeadSources; empty means unknown.
	LeadSource         string
	OwnerEmail         string
	DeliveryOwnerEmail string
	// Consent is consent to marketing mail.
	Consent         bool
	Stage           string
	Score           int
	CampaignID      string
	CampaignVersion string
	// Tags are the contact's tags (customer.CheckTag), sorted and
	// distinct; nil when it has none (never an empty non-nil slice, so
	// that a contact read back compares equal to one written without
	// tags). Read by GetContact; set with SetTags.
	Tags      []string
	CreatedAt time.Time
	UpdatedAt time.Time
	// ErasedAt is set on the tombstone of an erased customer.
	ErasedAt *time.Time
}

// Profile is the customer's profile part of the contact.
func (c Contact) Profile() customer.Profile {
	return customer.Profile{
		CustomerID: c.CustomerID, Email: c.Email, FirstName: c.FirstName, LastName: c.LastName,
		Company: c.Company, Role: c.Role, CompanySize: c.CompanySize, TimeZone: c.TimeZone,
		LeadSource: c.LeadSource, OwnerEmail: c.OwnerEmail,
	}
}

// Erased reports whether the contact is the tombstone of an erased customer.
func (c Contact) Erased() bool { return c.ErasedAt != nil }

func (c *Contact) normalize() {
	c.CustomerID = strings.TrimSpace(c.CustomerID)
	c.Email = strings.TrimSpace(c.Email)
	c.OwnerEmail = strings.TrimSpace(c.OwnerEmail)
	c.DeliveryOwnerEmail = strings.TrimSpace(c.DeliveryOwnerEmail)
	c.TimeZone = strings.TrimSpace(c.TimeZone)
}

// validate applies the customer's field rules (package customer, the
// same as the API and the journey) and names the first bad field.
func (c Contact) validate() error {
	if err := c.Profile().Validate(); err != nil {
		return rule(err, c.Email, c.OwnerEmail)
	}
	if err := validEmail("delivery_owner_email", c.DeliveryOwnerEmail, false); err != nil {
		return err
	}
	if c.Stage == string(customer.StageErased) {
		return invalid("stage", "%q is set by Erase only", c.Stage)
	}
	if err := validStage("stage", c.Stage, true); err != nil {
		return err
	}
	return nil
}

// UpsertContact creates the contact or replaces its profile fields (email,
// names, company, role, company size, time zone, lead source, owners,
// consent) with those of c; every profile field is written, so to change a
// few, read the contact with GetContact first. Stage, score and campaign are
// taken from c only when the contact is created. An erased contact is never
// brought back: the call returns ErrErased and changes nothing.
func (s *Store) UpsertContact(ctx context.Context, c Contact) error {
	c.normalize()
	if err := c.validate(); err != nil {
		return fmt.Errorf("upsert contact %q: %w", c.CustomerID, err)
	}
	const q = `
INSERT INTO contacts AS c (customer_id, email, first_name, last_name, company, role, company_size,
    time_zone, lead_source, owner_email, delivery_owner_email, consent,
    stage, score, campaign_id, campaign_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (customer_id) DO UPDATE SET
    email = EXCLUDED.email,
    first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name,
    company = EXCLUDED.company,
    role = EXCLUDED.role,
    company_size = EXCLUDED.company_size,
    time_zone = EXCLUDED.time_zone,
    lead_source = EXCLUDED.lead_source,
    owner_email = EXCLUDED.owner_email,
    delivery_owner_email = EXCLUDED.delivery_owner_email,
    consent = EXCLUDED.consent,
    updated_at = now()
WHERE c.erased_at IS NULL`
	tag, err := s.pool.Exec(ctx, q, c.CustomerID, c.Email, c.FirstName, c.LastName, c.Company, c.Role,
		c.CompanySize, c.TimeZone, c.LeadSource, c.OwnerEmail, c.DeliveryOwnerEmail, c.Consent,
		c.Stage, c.Score, c.CampaignID, c.CampaignVersion)
	if err != nil {
		return fmt.Errorf("upsert contact %q: %w", c.CustomerID, err)
	}
	if tag.RowsAffected() == 0 {
		// The row exists and the WHERE excluded it: it is a tombstone.
		return fmt.Errorf("upsert contact %q: %w", c.CustomerID, ErrErased)
	}
	return nil
}

const contactColumns = `customer_id, email, first_name, last_name, company, role, company_size,
    time_zone, lead_source, owner_email, delivery_owner_email, consent, stage, score,
    campaign_id, campaign_version, tags, created_at, updated_at, erased_at`

func scanContact(row pgx.Row) (Contact, error) {
	var c Contact
	err := row.Scan(&c.CustomerID, &c.Email, &c.FirstName, &c.LastName, &c.Company, &c.Role,
		&c.CompanySize, &c.TimeZone, &c.LeadSource, &c.OwnerEmail, &c.DeliveryOwnerEmail,
		&c.Consent, &c.Stage, &c.Score, &c.CampaignID, &c.CampaignVersion, &c.Tags, &c.CreatedAt,
		&c.UpdatedAt, &c.ErasedAt)
	if len(c.Tags) == 0 {
		// pgx scans '{}' as an empty non-nil slice; none is nil (see Contact.Tags).
		c.Tags = nil
	}
	return c, err
}

// GetContact returns the contact, or ErrNotFound. The tombstone of an
// erased customer is returned as it is (ErasedAt set, personal fields
// empty).
func (s *Store) GetContact(ctx context.Context, customerID string) (Contact, error) {
	if err := requireText("customer_id", customerID); err != nil {
		return Contact{}, fmt.Errorf("get contact: %w", err)
	}
	c, err := scanContact(s.pool.QueryRow(ctx,
		`SELECT `+contactColumns+` FROM contacts WHERE customer_id = $1`, customerID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Contact{}, fmt.Errorf("get contact %q: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return Contact{}, fmt.Errorf("get contact %q: %w", customerID, err)
	}
	return c, nil
}
