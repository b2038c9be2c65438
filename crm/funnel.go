package crm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/acme/lifecycle/customer"
)

// FunnelQuery selects the customers a funnel report is about.
type FunnelQuery struct {
	// Since, when set, keeps the customers whose journey started (first
	// stage transition) at or after it: a cohort.
	Since time.Time
	// CampaignID, when set, keeps the customers on that campaign
	// (contacts.campaign_id).
	CampaignID string
	// Tag, when set, keeps the customers whose contact has that tag
	// (customer.CheckTag).
	Tag string
	// Until, when set, keeps the customers whose journey started before
	// it: with Since, a period (this month, the one before).
	Until time.Time
}

// Funnel is where customers are and how they move through the stages,
// computed from contacts and stage_transitions.
type Funnel struct {
	Since      time.Time `json:"since,omitzero"`
	Until      time.Time `json:"until,omitzero"`
	CampaignID string    `json:"campaign_id,omitempty"`
	Tag        string    `json:"tag,omitempty"`
	// Customers counts the customers in the report (those with at least one
	// stage transition that match the query).
	Customers int `json:"customers"`
	// Stages counts customers per current stage (contacts.stage), in
	// journey order; stages nobody is in are left out.
	Stages []StageCount `json:"stages"`
	// Conversions: of the customers who entered From, how many entered To
	// afterwards.
	Conversions []Conversion `json:"conversions"`
	// TimeInStage is the median time a stay in a stage lasted, from
	// consecutive transitions of a customer; stays still going on are not
	// counted.
	TimeInStage []StageTime `json:"time_in_stage"`
}

// StageCount is the number of customers currently in a stage.
type StageCount struct {
	Stage     string `json:"stage"`
	Customers int    `json:"customers"`
}

// Conversion is the share of customers who, having entered one of From,
// entered To later (after their first entry into From).
type Conversion struct {
	From      []customer.Stage `json:"from"`
	To        customer.Stage   `json:"to"`
	Label     string           `json:"label,omitempty"`
	Entered   int              `json:"entered"`
	Converted int              `json:"converted"`
	// Rate is Converted/Entered (0 when nobody entered).
	Rate float64 `json:"rate"`
}

// Name is "trial/nurture → sales".
func (c Conversion) Name() string {
	from := make([]string, len(c.From))
	for i, st := range c.From {
		from[i] = string(st)
	}
	n := strings.Join(from, "/") + " → " + string(c.To)
	if c.Label != "" {
		n += " (" + c.Label + ")"
	}
	return n
}

// StageTime is the median duration of completed stays in a stage.
type StageTime struct {
	Stage  string        `json:"stage"`
	Stays  int           `json:"stays"`
	Median time.Duration `json:"-"`
	// MedianSeconds is Median in seconds (for JSON).
	MedianSeconds float64 `json:"median_seconds"`
}

// FunnelSteps are the conversions a funnel report shows.
var FunnelSteps = []Conversion{
	{From: []customer.Stage{customer.StageTrial}, To: customer.StageNurture},
	{From: []customer.Stage{customer.StageTrial, customer.StageNurture}, To: customer.StageSales},
	{From: []customer.Stage{customer.StageSales}, To: customer.StageOnboarding},
	{From: []customer.Stage{customer.StageOnboarding}, To: customer.StageActive},
	{From: []customer.Stage{customer.StageActive}, To: customer.StageAtRisk},
	{From: []customer.Stage{customer.StageAtRisk}, To: customer.StageActive, Label: "reactivated"},
	{From: []customer.Stage{customer.StageAtRisk}, To: customer.StageChurned},
	{From: []customer.Stage{customer.StageChurned}, To: customer.StageActive, Label: "won back"},
}

// cohortCTE selects the customers of the report: $1 since (NULL: all), $2
// campaign id (empty: all), $3 tag (empty: all), $4 until (NULL: all). A report (starter report
// funnel) runs each statement once on its connection, so PostgreSQL plans
// it for the values: an empty parameter folds its condition away, and a
// tag's containment can use contacts_tags_gin.
const cohortCTE = `
cohort AS (
    SELECT t.customer_id
    FROM stage_transitions t
    JOIN contacts c ON c.customer_id = t.customer_id
    WHERE ($2::text = '' OR c.campaign_id = $2::text)
      AND ($3::text = '' OR c.tags @> ARRAY[$3::text])
    GROUP BY t.customer_id
    HAVING ($1::timestamptz IS NULL OR min(t.at) >= $1::timestamptz)
       AND ($4::timestamptz IS NULL OR min(t.at) < $4::timestamptz)
)`

// Funnel computes the funnel report. Every query is parameterised. A bad
// q.Tag is a *ValidationError for field "tag".
func (s *Store) Funnel(ctx context.Context, q FunnelQuery) (Funnel, error) {
	f := Funnel{Since: q.Since, Until: q.Until, CampaignID: q.CampaignID, Tag: q.Tag}
	if q.Tag != "" {
		if err := customer.CheckTag("tag", q.Tag); err != nil {
			return f, fmt.Errorf("funnel: %w", rule(err))
		}
	}
	since, until := nullTime(q.Since), nullTime(q.Until)

	rows, err := s.pool.Query(ctx, `WITH `+cohortCTE+`
SELECT c.stage, count(*)
FROM contacts c JOIN cohort USING (customer_id)
GROUP BY c.stage`, since, q.CampaignID, q.Tag, until)
	if err != nil {
		return f, fmt.Errorf("funnel: stages: %w", err)
	}
	counts := map[string]int{}
	for rows.Next() {
		var stage string
		var n int
		if err := rows.Scan(&stage, &n); err != nil {
			rows.Close()
			return f, fmt.Errorf("funnel: stages: %w", err)
		}
		counts[stage] += n
		f.Customers += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("funnel: stages: %w", err)
	}
	for _, st := range orderedStages(counts) {
		f.Stages = append(f.Stages, StageCount{Stage: st, Customers: counts[st]})
	}

	// Conversions: one row per (step, from stage); a customer's entry into
	// a step is their first transition into any of its From stages, by
	// time then by insertion order (a hot lead enters trial and sales at
	// the same instant, in that order).
	var idx []int32
	var from, to []string
	for i, c := range FunnelSteps {
		for _, st := range c.From {
			idx, from, to = append(idx, int32(i)), append(from, string(st)), append(to, string(c.To))
		}
	}
	rows, err = s.pool.Query(ctx, `WITH `+cohortCTE+`,
steps AS (
    SELECT * FROM unnest($5::int[], $6::text[], $7::text[]) AS p(idx, from_stage, to_stage)
),
entered AS (
    SELECT DISTINCT ON (p.idx, t.customer_id) p.idx, p.to_stage, t.customer_id, t.at, t.id
    FROM steps p
    JOIN stage_transitions t ON t.to_stage = p.from_stage
    JOIN cohort ON cohort.customer_id = t.customer_id
    ORDER BY p.idx, t.customer_id, t.at, t.id
)
SELECT e.idx, count(*),
    count(*) FILTER (WHERE EXISTS (
        SELECT 1 FROM stage_transitions n
        WHERE n.customer_id = e.customer_id AND n.to_stage = e.to_stage
          AND (n.at > e.at OR (n.at = e.at AND n.id > e.id))))
FROM entered e
GROUP BY e.idx`, since, q.CampaignID, q.Tag, until, idx, from, to)
	if err != nil {
		return f, fmt.Errorf("funnel: conversions: %w", err)
	}
	conv := make([]Conversion, len(FunnelSteps))
	copy(conv, FunnelSteps)
	for rows.Next() {
		var i int32
		var entered, converted int
		if err := rows.Scan(&i, &entered, &converted); err != nil {
			rows.Close()
			return f, fmt.Errorf("funnel: conversions: %w", err)
		}
		conv[i].Entered, conv[i].Converted = entered, converted
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("funnel: conversions: %w", err)
	}
	for i := range conv {
		if conv[i].Entered > 0 {
			conv[i].Rate = float64(conv[i].Converted) / float64(conv[i].Entered)
		}
	}
	f.Conversions = conv

	// Time in stage: each transition opens a stay in its to_stage that the
	// customer's next transition closes.
	rows, err = s.pool.Query(ctx, `WITH `+cohortCTE+`,
stays AS (
    SELECT t.to_stage AS stage,
        lead(t.at) OVER (PARTITION BY t.customer_id ORDER BY t.at, t.id) - t.at AS length
    FROM stage_transitions t
    JOIN cohort ON cohort.customer_id = t.customer_id
)
SELECT stage, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM length))
FROM stays
WHERE length IS NOT NULL
GROUP BY stage`, since, q.CampaignID, q.Tag, until)
	if err != nil {
		return f, fmt.Errorf("funnel: time in stage: %w", err)
	}
	times := map[string]StageTime{}
	for rows.Next() {
		var st StageTime
		var seconds float64
		if err := rows.Scan(&st.Stage, &st.Stays, &seconds); err != nil {
			rows.Close()
			return f, fmt.Errorf("funnel: time in stage: %w", err)
		}
		st.Median = time.Duration(seconds * float64(time.Second)).Round(time.Second)
		st.MedianSeconds = st.Median.Seconds()
		times[st.Stage] = st
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("funnel: time in stage: %w", err)
	}
	for _, st := range orderedStages(times) {
		f.TimeInStage = append(f.TimeInStage, times[st])
	}
	return f, nil
}

// orderedStages lists the keys in journey order, unknown ones last by name.
func orderedStages[V any](m map[string]V) []string {
	var out, rest []string
	for _, st := range customer.StageNames() {
		if _, ok := m[st]; ok {
			out = append(out, st)
		}
	}
	for st := range m {
		if !customer.Stage(st).Valid() {
			rest = append(rest, st)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}
