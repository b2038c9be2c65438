package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"

	"github.com/acme/lifecycle/workflows"
)

// CostReport is what one typical customer journey cost on the server.
type CostReport struct {
	Scale       float64 `json:"scale"`
	JourneyDays float64 `json:"journey_days"`
	Journeys    int     `json:"journeys"`
	// Per journey (averaged over Journeys).
	Runs             float64            `json:"runs"`
	Actions          map[string]float64 `json:"actions"`
	TotalActions     float64            `json:"total_actions"`
	ActionsPerYear   float64            `json:"actions_per_year"`
	HistoryBytes     float64            `json:"history_bytes"`
	HistoryEvents    float64            `json:"history_events"`
	BytesPerYear     float64            `json:"bytes_per_year"`
	EventTypes       map[string]float64 `json:"event_types"`
	ActivityTypes    map[string]float64 `json:"activity_types"`
	LargestRunEvents int                `json:"largest_run_events"`
	LargestRunBytes  int                `json:"largest_run_bytes"`
	SignalsSent      int                `json:"signals_sent"`
	HarnessQueries   int                `json:"harness_queries"`
	VersionUpserts   float64            `json:"version_upserts"` // TemporalChangeVersion only: not billed
	FinalStage       string             `json:"final_stage"`
	Emails           map[string]int     `json:"emails"` // template → sent (all journeys)
	Load             string             `json:"load"`
	Elapsed          time.Duration      `json:"elapsed"`
	Repro            string             `json:"repro"`
}

// step is a scripted event on a journey day.
type step struct {
	day float64
	typ string // "" is the signup
}

// typicalJourney is signup → nurture with 20 engagement events → handoff
// (a demo request crosses the threshold) → accepted → deal won →
// onboarding (31 days) → a year in active with a login every 20 days (so it
// never goes at risk), holidays and advocacy asks as the campaign says.
func typicalJourney() (steps []step, endDay float64) {
	steps = append(steps, step{0, ""})
	nurture := []string{"email_opened", "email_clicked", "email_opened", "content_downloaded", "email_opened",
		"email_clicked", "email_opened", "email_opened", "content_downloaded", "email_clicked",
		"email_opened", "email_opened", "email_clicked", "email_opened", "content_downloaded",
		"email_clicked", "email_opened", "email_clicked", "email_opened", "demo_requested"} // 43 points, then +30
	for i, t := range nurture {
		steps = append(steps, step{4 + 2*float64(i), t})
	}
	steps = append(steps, step{44, "sales_accepted"}, step{46, "deal_won"})
	// Onboarding ends on day ~77; a year in active from there.
	for d := 80.0; d <= 77+365; d += 20 {
		steps = append(steps, step{d, "login"})
	}
	return steps, 77 + 365 + 3
}

// cost runs typical journeys at a high time scale on the real dev server,
// then reads every run's history and counts Temporal Cloud actions.
func (h *Harness) cost(ctx context.Context) error {
	ms, err := h.main(ctx)
	if err != nil {
		return err
	}
	scale := h.cfg.CostScale
	starter := workflows.Starter{Client: h.c, TaskQueue: ms.cfg.Temporal.TaskQueue, CampaignID: "saas-lifecycle", TimeScale: scale}
	day := time.Duration(float64(24*time.Hour) / scale)
	steps, endDay := typicalJourney()
	tz := daytimeZone(time.Now())
	m := begin()
	q0 := h.queries.Load()

	type journeyRun struct {
		id, firstRun string
		signals      int
	}
	runs := make([]journeyRun, h.cfg.CostJourneys)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for j := range runs {
		wg.Go(func() {
			id := fmt.Sprintf("cost-%s-%d", h.id, j)
			epoch := time.Now()
			for k, s := range steps {
				time.Sleep(time.Until(epoch.Add(time.Duration(s.day * float64(day)))))
				var err error
				if s.typ == "" {
					run, e := starter.Signup(ctx, workflows.Signup{CustomerID: id, Email: fmt.Sprintf("cost%d@cost-%s.example", j, h.id),
						FirstName: "Typical", Company: "Typical Co", Role: "engineer", CompanySize: 10, TimeZone: tz, LeadSource: "cold"})
					if e == nil {
						runs[j].firstRun = run.GetRunID()
					}
					err = e
				} else {
					err = starter.Events(ctx, id, workflows.Event{ID: fmt.Sprintf("%s-%d", id, k), Type: s.typ})
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				runs[j].signals++
			}
			runs[j].id = id
			time.Sleep(time.Until(epoch.Add(time.Duration(endDay * float64(day)))))
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}

	rep := &CostReport{Scale: scale, JourneyDays: endDay, Journeys: len(runs), Actions: map[string]float64{}, EventTypes: map[string]float64{}, ActivityTypes: map[string]float64{}, Emails: map[string]int{}}
	for _, r := range runs {
		// The final stage (one query, counted below).
		v, err := workflows.State(ctx, h.c, r.id)
		h.queries.Add(1)
		if err == nil {
			rep.FinalStage = string(v.Stage)
		}
		// Stop the journey before reading, so no run is added meanwhile.
		_ = h.c.TerminateWorkflow(ctx, workflows.JourneyID(r.id), "", "cost benchmark done")
		runID := r.firstRun
		for runID != "" {
			events, size, next, err := h.readRun(ctx, workflows.JourneyID(r.id), runID)
			if err != nil {
				return err
			}
			rep.Runs++
			rep.HistoryBytes += float64(size)
			rep.HistoryEvents += float64(len(events))
			rep.LargestRunEvents = max(rep.LargestRunEvents, len(events))
			rep.LargestRunBytes = max(rep.LargestRunBytes, size)
			for _, e := range events {
				rep.EventTypes[e.GetEventType().String()]++
				switch e.GetEventType() {
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
					if e.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId() != "" {
						rep.Actions["continue-as-new (new run started)"]++
					} else {
						rep.Actions["workflow start (signal-with-start)"]++
					}
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
					rep.Actions["signals"]++
				case enumspb.EVENT_TYPE_TIMER_STARTED:
					rep.Actions["timers started"]++
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
					rep.Actions["activities scheduled"]++
					rep.ActivityTypes[e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()]++
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
					if a := e.GetActivityTaskStartedEventAttributes().GetAttempt(); a > 1 {
						rep.Actions["activity retries (extra attempts)"] += float64(a - 1)
					}
				case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
					// Temporal Cloud exempts the TemporalChangeVersion
					// upsert of workflow.GetVersion (docs.temporal.io/cloud/actions).
					fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
					if _, ok := fields["TemporalChangeVersion"]; ok && len(fields) == 1 {
						rep.VersionUpserts++
						continue
					}
					rep.Actions["search-attribute upserts"]++
				case enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
					rep.Actions["memo upserts"]++
				case enumspb.EVENT_TYPE_MARKER_RECORDED:
					// One per local activity: an upper bound, as Temporal
					// Cloud may bill the local activities of one workflow
					// task as one action.
					if e.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
						rep.Actions["local activities (one action each: an upper bound)"]++
					}
				}
			}
			runID = next
		}
		rep.SignalsSent += r.signals
		rows, err := ms.app.CRM.Pool().Query(ctx, `SELECT template, count(*) FROM email_log WHERE customer_id = $1 AND status = 'sent' GROUP BY template`, r.id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t string
			var c int
			if err := rows.Scan(&t, &c); err == nil {
				rep.Emails[t] += c
			}
		}
		rows.Close()
	}
	rep.HarnessQueries = int(h.queries.Load() - q0)
	j := float64(len(runs))
	for k := range rep.Actions {
		rep.Actions[k] /= j
	}
	for k := range rep.EventTypes {
		rep.EventTypes[k] /= j
	}
	for k := range rep.ActivityTypes {
		rep.ActivityTypes[k] /= j
	}
	rep.Runs /= j
	rep.VersionUpserts /= j
	rep.HistoryBytes /= j
	rep.HistoryEvents /= j
	for _, v := range rep.Actions {
		rep.TotalActions += v
	}
	rep.ActionsPerYear = rep.TotalActions * 365 / endDay
	rep.BytesPerYear = rep.HistoryBytes * 365 / endDay
	rep.Elapsed = time.Since(m.t0)
	rep.Load = m.load + " → " + load1()
	rep.Repro = fmt.Sprintf("lifecycle-bench -phases cost -cost-scale %g -cost-journeys %d", scale, len(runs))
	h.results.Cost = rep
	h.results.add(m.end(&Figure{Phase: "cost", Name: "Temporal actions per customer-year (typical journey)", Value: rep.ActionsPerYear, Unit: "actions",
		N: len(runs), Note: fmt.Sprintf("%.0f actions over %.0f journey days, %.1f runs; target < 150", rep.TotalActions, endDay, rep.Runs), Repro: rep.Repro}))
	h.results.add(m.end(&Figure{Phase: "cost", Name: "largest single-run history", Value: float64(rep.LargestRunEvents), Unit: "events",
		N: len(runs), Note: fmt.Sprintf("%d bytes; target ≤ 2,000 events", rep.LargestRunBytes), Repro: rep.Repro}))
	return nil
}

// readRun reads one run's whole history; next is the run it continued as
// new into ("" when none).
func (h *Harness) readRun(ctx context.Context, workflowID, runID string) (events []*historypb.HistoryEvent, size int, next string, err error) {
	it := h.c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, 0, "", fmt.Errorf("history of %s run %s: %w", workflowID, runID, err)
		}
		events = append(events, e)
	}
	size = proto.Size(&historypb.History{Events: events})
	if n := len(events); n > 0 && events[n-1].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
		next = events[n-1].GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
	}
	return events, size, next, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, strings.Compare)
	return keys
}
