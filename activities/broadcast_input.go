package activities

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/acme/lifecycle/crm"
)

// Broadcast pages: the Broadcast workflow (package workflows) runs one
// BroadcastSendPage activity per page of the segment.

// BroadcastHeartbeatTimeout is BroadcastSendPage's heartbeat timeout: a
// page whose worker died is tried again (from its last heartbeat) this
// long after the last heartbeat arrived.
const BroadcastHeartbeatTimeout = 20 * time.Second

// DefaultBroadcastPageSize is the page size when Broadcast.PageSize is 0.
const DefaultBroadcastPageSize = 500

// MaxBroadcastPageSize is the largest Broadcast.PageSize.
const MaxBroadcastPageSize = 5000

// Broadcast says what a broadcast sends to whom: the Broadcast workflow's
// input without the state it carries across runs. The JSON names are the
// workflow input's.
type Broadcast struct {
	// BroadcastID is part of every send key
	// ("<customerID>/broadcast/<BroadcastID>").
	BroadcastID string `json:"broadcast_id"`
	// Occurrence names one run of a recurring broadcast (its scheduled
	// time): each occurrence reaches a contact once, so the send key
	// becomes "<customerID>/broadcast/<BroadcastID>/<Occurrence>". Empty
	// for a one-off broadcast.
	Occurrence string `json:"occurrence,omitempty"`
	// CampaignVersion "" means the latest version.
	CampaignID, CampaignVersion string
	Template                    string           `json:"template"`
	Segment                     BroadcastSegment `json:"segment"`
	// RatePerSecond 0 means unlimited.
	RatePerSecond int `json:"rate_per_second,omitempty"`
	// PageSize 0 means DefaultBroadcastPageSize.
	PageSize          int  `json:"page_size,omitempty"`
	RespectQuietHours bool `json:"respect_quiet_hours,omitempty"`
}

// BroadcastSegment selects the recipients (crm.Segment). It has the
// fields of workflows.BroadcastSegment, which converts to it.
type BroadcastSegment struct {
	Stages           []string `json:"stages,omitempty"`
	MinScore         *int     `json:"min_score,omitempty"`
	LeadSources      []string `json:"lead_sources,omitempty"`
	CustomerIDPrefix string   `json:"customer_id_prefix,omitempty"`
	// Tags: contacts having every one of these tags.
	Tags []string `json:"tags,omitempty"`
}

// crm is the segment as the CRM's SegmentPage takes it: every field is
// passed on, or a broadcast would silently reach more contacts than asked.
func (s BroadcastSegment) crm() crm.Segment {
	return crm.Segment{Stages: s.Stages, MinScore: s.MinScore, LeadSources: s.LeadSources,
		CustomerIDPrefix: s.CustomerIDPrefix, Tags: s.Tags}
}

var broadcastIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`)

// Validate checks a broadcast; errors are *crm.ValidationError naming the
// field by its JSON name ("broadcast_id", "segment.stages[0]",
// "page_size"). The campaign and the template are checked by the page.
func (b Broadcast) Validate() error {
	invalid := func(field, format string, args ...any) error {
		return &crm.ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if b.BroadcastID == "" {
		return invalid("broadcast_id", "is empty")
	}
	if !broadcastIDRE.MatchString(b.BroadcastID) {
		return invalid("broadcast_id", "%q must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", b.BroadcastID)
	}
	if b.Occurrence != "" && !broadcastIDRE.MatchString(b.Occurrence) {
		return invalid("occurrence", "%q must be 1-100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", b.Occurrence)
	}
	if b.CampaignID == "" {
		return invalid("campaign_id", "is empty")
	}
	if b.Template == "" {
		return invalid("template", "is empty")
	}
	if err := b.Segment.crm().Validate(); err != nil {
		var verr *crm.ValidationError
		if errors.As(err, &verr) {
			return verr
		}
		return invalid("segment", "%v", err)
	}
	if b.RatePerSecond < 0 {
		return invalid("rate_per_second", "%d is negative (0 means unlimited)", b.RatePerSecond)
	}
	if b.PageSize < 0 || b.PageSize > MaxBroadcastPageSize {
		return invalid("page_size", "%d is not between 0 (default %d) and %d", b.PageSize, DefaultBroadcastPageSize, MaxBroadcastPageSize)
	}
	return nil
}

// PageSizeOrDefault is PageSize, or DefaultBroadcastPageSize when it is 0.
func (b Broadcast) PageSizeOrDefault() int {
	if b.PageSize == 0 {
		return DefaultBroadcastPageSize
	}
	return b.PageSize
}

// BroadcastSendKey returns the send key of a one-off broadcast's email to
// a customer.
func BroadcastSendKey(customerID, broadcastID string) string {
	return Broadcast{BroadcastID: broadcastID}.SendKey(customerID)
}

// SendKey returns the send key of the broadcast's email to a customer: per
// broadcast, and for a recurring one per occurrence.
func (b Broadcast) SendKey(customerID string) string { return customerID + b.keySuffix() }

func (b Broadcast) keySuffix() string {
	if b.Occurrence != "" {
		return "/broadcast/" + b.BroadcastID + "/" + b.Occurrence
	}
	return "/broadcast/" + b.BroadcastID
}

// BroadcastPageInput asks BroadcastSendPage for the page after Cursor.
type BroadcastPageInput struct {
	Broadcast Broadcast `json:"input"`
	Cursor    string    `json:"cursor,omitempty"`
}

// BroadcastPageResult is what one page did; every contact of the page is
// counted in exactly one of Sent, Duplicate, Suppressed, Failed, Deferred
// (see sendonce.Counts).
type BroadcastPageResult struct {
	Sent       int `json:"sent"`
	Duplicate  int `json:"duplicate"`
	Suppressed int `json:"suppressed"`
	Failed     int `json:"failed"`
	Deferred   int `json:"deferred"`
	// NextCursor is the last customer ID of the page (the next page starts
	// after it); Done says the segment is exhausted.
	NextCursor string `json:"next_cursor"`
	Done       bool   `json:"done"`
	// CampaignVersion is the version the page was rendered with; the
	// workflow pins it when the input asked for the latest.
	CampaignVersion string `json:"campaign_version,omitempty"`
}

// Recipients is the number of contacts the page handled.
func (r BroadcastPageResult) Recipients() int {
	return r.Sent + r.Duplicate + r.Suppressed + r.Failed + r.Deferred
}
