package campaign

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/acme/lifecycle/customer"
)

// Reason is one contribution to a lead score. Source is an event type
// ("demo_requested") or a profile fact: "source:referral", "company_size",
// "role:cto".
type Reason struct {
	Source string
	Points int
}

// String formats the reason as "demo_requested +30".
func (r Reason) String() string { return fmt.Sprintf("%s %+d", r.Source, r.Points) }

// NormalizeRole turns a job role into the form Fit.Roles uses: trimmed,
// lower case, runs of spaces, dashes and slashes as one underscore
// ("VP Engineering" → "vp_engineering").
func NormalizeRole(role string) string { return normalizeKey(role) }

// NormalizeLeadSource turns a lead source into the form SourcePoints uses
// ("Search Ads" → "search_ads").
func NormalizeLeadSource(source string) string { return normalizeKey(source) }

func normalizeKey(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	var b strings.Builder
	sep := false
	for _, r := range s {
		switch r {
		case ' ', '\t', '-', '/', '_':
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('_')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}

// FitPoints scores the profile: the lead source's trust level (an unknown or
// empty source counts as cold), the first company-size band the size
// reaches, and the role (normalised with NormalizeRole). Reasons list the
// non-zero contributions in that order: "source:referral", "company_size",
// "role:cto".
func (s Scoring) FitPoints(leadSource string, companySize int, role string) (int, []Reason) {
	var reasons []Reason
	total := 0
	add := func(src string, pts int) {
		if pts != 0 {
			total += pts
			reasons = append(reasons, Reason{Source: src, Points: pts})
		}
	}
	src := NormalizeLeadSource(leadSource)
	if !customer.IsLeadSource(src) {
		src = customer.LeadCold
	}
	add("source:"+src, s.SourcePoints[src])
	for _, b := range s.Fit.CompanySize {
		if companySize >= b.Min {
			add("company_size", b.Points)
			break
		}
	}
	if r := NormalizeRole(role); r != "" {
		add("role:"+r, s.Fit.Roles[r])
	}
	return total, reasons
}

// EventPointsFor returns the behaviour points of an event type (0 when the
// campaign gives it none).
func (s Scoring) EventPointsFor(eventType string) int { return s.EventPoints[eventType] }

// Qualifies reports whether a score reaches the sales threshold.
func (s Scoring) Qualifies(score int) bool { return s.Threshold > 0 && score >= s.Threshold }

// Decayed returns behaviour points after decay: Decay.Points are removed for
// each full Decay.Every elapsed since lastEngagement, never going below
// zero. Points that are zero or negative, and a campaign without decay, are
// returned unchanged.
func (s Scoring) Decayed(points int, lastEngagement, now time.Time) int {
	if points <= 0 || s.Decay.Points <= 0 || s.Decay.Every <= 0 {
		return points
	}
	elapsed := now.Sub(lastEngagement)
	if elapsed <= 0 {
		return points
	}
	n := int64(elapsed / s.Decay.Every.D())
	if n >= int64(points)/int64(s.Decay.Points)+1 {
		return 0
	}
	return max(points-int(n)*s.Decay.Points, 0)
}

// TopReasons adds up reasons with the same Source and returns the n largest
// by points (ties by source), for the sales handoff's "why". n <= 0 returns
// them all.
func TopReasons(reasons []Reason, n int) []Reason {
	sum := map[string]int{}
	for _, r := range reasons {
		sum[r.Source] += r.Points
	}
	out := make([]Reason, 0, len(sum))
	for src, pts := range sum {
		if pts != 0 {
			out = append(out, Reason{Source: src, Points: pts})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Points != out[j].Points {
			return out[i].Points > out[j].Points
		}
		return out[i].Source < out[j].Source
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// FormatReasons writes reasons as "demo_requested +30, pricing_viewed +10".
func FormatReasons(reasons []Reason) string {
	parts := make([]string, len(reasons))
	for i, r := range reasons {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// BandFor returns the content band for a score: the band with the highest
// MinScore that the score reaches. A score below every band gets the lowest
// band; no bands give "".
func (n Nurture) BandFor(score int) string {
	best, lowest := -1, -1
	for i, b := range n.Bands {
		if b.MinScore <= score && (best < 0 || b.MinScore > n.Bands[best].MinScore) {
			best = i
		}
		if lowest < 0 || b.MinScore < n.Bands[lowest].MinScore {
			lowest = i
		}
	}
	if best < 0 {
		best = lowest
	}
	if best < 0 {
		return ""
	}
	return n.Bands[best].Name
}

// TemplateFor returns the step's template for a content band: the variant
// for the band if there is one, else Template.
func (s Step) TemplateFor(band string) string {
	if t, ok := s.Variants[band]; ok && t != "" {
		return t
	}
	return s.Template
}
