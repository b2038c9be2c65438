package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	tlog "go.temporal.io/sdk/log"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/email/mailpit"
	"github.com/acme/lifecycle/workflows"
)

// quietLogger keeps the Temporal client's info chatter out of CLI output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(msg string, kv ...any) {
	tlog.NewStructuredLogger(slog.Default()).Warn(msg, kv...)
}
func (quietLogger) Error(msg string, kv ...any) {
	tlog.NewStructuredLogger(slog.Default()).Error(msg, kv...)
}

// demoCustomer is a scripted customer: a signup and events on journey days.
type demoCustomer struct {
	name   string
	signup workflows.Signup
	// signupDay > 0 signs up late: events before it arrive at a journey
	// that does not exist yet (signal-with-start, pending stage).
	signupDay float64
	events    []demoEvent
	story     string
}

type demoEvent struct {
	day   float64
	typ   string
	id    string // fixed id: sent twice to show deduplication
	twice bool
}

func demoCustomers() []demoCustomer {
	return []demoCustomer{
		{name: "ada", story: "referral CTO: activation crosses the threshold → sales → deal won → onboarding → active",
			signup: workflows.Signup{FirstName: "Ada", LastName: "Lovelace", Company: "Analytical Engines", Role: "cto", CompanySize: 500, TimeZone: "Europe/Berlin", LeadSource: customer.LeadReferral},
			events: []demoEvent{{day: 0.5, typ: customer.EventTrialActivated}, {day: 1.5, typ: customer.EventSalesAccepted}, {day: 3, typ: customer.EventDealWon}, {day: 20, typ: customer.EventLogin}, {day: 45, typ: customer.EventLogin}}},
		{name: "ben", story: "cold lead: stays in nurture, content picked by score band; a duplicate event counts once",
			signup: workflows.Signup{FirstName: "Ben", LastName: "Okafor", Company: "Tiny Co", Role: "engineer", CompanySize: 12, TimeZone: "America/New_York", LeadSource: customer.LeadCold},
			events: []demoEvent{{day: 1, typ: customer.EventEmailOpened, id: "ben-open-1", twice: true}, {day: 6, typ: customer.EventPricingViewed}, {day: 14, typ: customer.EventWebinarAttended}}},
		{name: "chloe", story: "demo request → sales; sales rejects → back to nurture",
			signup: workflows.Signup{FirstName: "Chloe", LastName: "Tanaka", Company: "Kumo Data", Role: "head_of_data", CompanySize: 120, TimeZone: "Asia/Tokyo", LeadSource: customer.LeadSearchAds},
			events: []demoEvent{{day: 1, typ: customer.EventContentDownloaded}, {day: 2, typ: customer.EventPricingViewed}, {day: 3, typ: customer.EventDemoRequested}, {day: 5, typ: customer.EventSalesRejected}}},
		{name: "dan", story: "buys on day 1 → onboarding → active → goes quiet → at_risk (churn warning, win-back)",
			signup: workflows.Signup{FirstName: "Dan", LastName: "Reyes", Company: "Northwind", Role: "vp_engineering", CompanySize: 2000, TimeZone: "Europe/London", LeadSource: customer.LeadCurrentCustomer},
			events: []demoEvent{{day: 1, typ: customer.EventPurchase}, {day: 10, typ: customer.EventLogin}}},
		{name: "eve", story: "unsubscribes on day 2: marketing mail stops at once, journey exits",
			signup: workflows.Signup{FirstName: "Eve", LastName: "Moreau", Company: "Paris Labs", Role: "engineer", CompanySize: 40, TimeZone: "Europe/Paris", LeadSource: customer.LeadConnected},
			events: []demoEvent{{day: 2, typ: customer.EventUnsubscribe}}},
		{name: "finn", story: "an event arrives before the signup: the journey waits (pending), then starts with the points",
			signupDay: 1,
			signup:    workflows.Signup{FirstName: "Finn", LastName: "Berg", Company: "Fjord AS", Role: "engineer", CompanySize: 80, TimeZone: "Europe/Oslo", LeadSource: customer.LeadExpert},
			events:    []demoEvent{{day: 0, typ: customer.EventPricingViewed}, {day: 4, typ: customer.EventEmailClicked}}},
		{name: "gina", story: "buys, onboards, stays active (logins reset the inactivity clock)",
			signup: workflows.Signup{FirstName: "Gina", LastName: "Rossi", Company: "Milano Retail", Role: "cto", CompanySize: 300, TimeZone: "America/Los_Angeles", LeadSource: customer.LeadReferral},
			events: []demoEvent{{day: 0.5, typ: customer.EventPurchase}, {day: 25, typ: customer.EventLogin}, {day: 50, typ: customer.EventLogin}, {day: 70, typ: customer.EventFeatureUsed}}},
		{name: "hugo", story: "address bounces: no more mail, journey goes on",
			signup: workflows.Signup{FirstName: "Hugo", LastName: "Silva", Company: "Lisboa Soft", Role: "engineer", CompanySize: 15, TimeZone: "Europe/Lisbon", LeadSource: customer.LeadSearchAds},
			events: []demoEvent{{day: 3, typ: customer.EventEmailBounced}}},
	}
}

// scheduled is one thing the demo does at a journey day.
type scheduled struct {
	day float64
	do  func(ctx context.Context) error
	log string
}

func (a *app) demoCmd() *cobra.Command {
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Sign up synthetic customers and feed them events under the time scale",
		Long: "Signs up a handful of synthetic customers and sends their scripted events at journey days,\n" +
			"compressed by TIME_SCALE (the worker must run with the same TIME_SCALE). Prints where to look\n" +
			"and a table of every journey's stage and score while it runs.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			return a.runDemo(cmd.Context(), duration)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 2*time.Minute, "how long to run (real time)")
	return cmd
}

func (a *app) runDemo(ctx context.Context, duration time.Duration) error {
	scale := a.cfg.TimeScale
	day := time.Duration(float64(24*time.Hour) / scale)
	tag := time.Now().UTC().Format("0102-150405")
	st := a.starter()
	customers := demoCustomers()

	var plan []scheduled
	ids := make([]string, 0, len(customers))
	for _, c := range customers {
		id := fmt.Sprintf("demo-%s-%s", tag, c.name)
		ids = append(ids, id)
		s := c.signup
		s.CustomerID = id
		s.Email = fmt.Sprintf("%s.%s@demo.example", c.name, tag)
		plan = append(plan, scheduled{day: c.signupDay, log: id + " signs up", do: func(ctx context.Context) error {
			s.At = time.Now()
			_, err := st.Signup(ctx, s)
			return err
		}})
		for i, e := range c.events {
			ev := workflows.Event{ID: fmt.Sprintf("%s/%d-%s", id, i, e.typ), Type: e.typ}
			if e.id != "" {
				ev.ID = id + "/" + e.id
			}
			times := 1
			if e.twice {
				times = 2
			}
			for range times {
				plan = append(plan, scheduled{day: e.day, log: fmt.Sprintf("%s: %s (%s)", id, e.typ, ev.ID), do: func(ctx context.Context) error {
					ev := ev
					ev.At = time.Now()
					return st.Events(ctx, id, ev)
				}})
			}
		}
	}
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].day < plan[j].day })

	a.printDemoIntro(tag, day, customers)
	start := time.Now()
	deadline := start.Add(duration)
	nextTable := start.Add(10 * time.Second)
	for len(plan) > 0 || time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		for len(plan) > 0 && !start.Add(time.Duration(plan[0].day*float64(day))).After(now) {
			p := plan[0]
			plan = plan[1:]
			err := p.do(ctx)
			if errors.Is(err, workflows.ErrJourneyEnded) {
				fmt.Printf("  day %5.1f  %s: not applied, the journey has ended\n", p.day, p.log)
				continue
			}
			if err != nil {
				return fmt.Errorf("demo: %s: %w", p.log, err)
			}
			fmt.Printf("  day %5.1f  %s\n", p.day, p.log)
		}
		if !now.Before(nextTable) {
			a.printTable(ctx, ids, time.Since(start), day)
			nextTable = now.Add(15 * time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
	a.printTable(ctx, ids, time.Since(start), day)
	a.printDemoOutro(tag)
	return nil
}

func (a *app) printDemoIntro(tag string, day time.Duration, customers []demoCustomer) {
	fmt.Printf("\nLifecycle demo %s: one journey day = %s of real time (TIME_SCALE=%g)\n\n", tag, day, a.cfg.TimeScale)
	for _, c := range customers {
		fmt.Printf("  %-6s %s\n", c.name, c.story)
	}
	fmt.Println()
	fmt.Println("Where to look:")
	fmt.Printf("  Temporal UI  %s\n               (try the filter JourneyStage = \"at_risk\" AND LeadScore >= 40; open a journey for its stage, score and next step)\n", temporalUI(a.cfg.Temporal.Namespace, tag))
	fmt.Printf("  Mailpit      %s  (every email the journeys sent)\n", mailpitUI())
	fmt.Printf("  CLI          bin/starter status demo-%s-ada\n\n", tag)
}

func (a *app) printDemoOutro(tag string) {
	fmt.Println("\nDemo done; the journeys keep running in the worker (make stop ends everything).")
	fmt.Printf("  Temporal UI  %s\n  Mailpit      %s\n", temporalUI(a.cfg.Temporal.Namespace, tag), mailpitUI())
}

func (a *app) printTable(ctx context.Context, ids []string, elapsed, day time.Duration) {
	fmt.Printf("\n── after %s (journey day %.0f) ──\n", elapsed.Round(time.Second), float64(elapsed)/float64(day))
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  customer\tstage\tscore\tnext")
	for _, id := range ids {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := workflows.State(qctx, a.client, id)
		cancel()
		if err != nil {
			fmt.Fprintf(tw, "  %s\t-\t-\t%s\n", id, shortErr(err))
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", id, v.Stage, v.Score, v.NextStep)
	}
	_ = tw.Flush()
	if api := os.Getenv("MAILPIT_API_URL"); api != "" {
		if n, err := mailpit.New(api).Total(ctx); err == nil {
			fmt.Printf("  emails in Mailpit: %d\n", n)
		}
	}
	fmt.Println()
}

func shortErr(err error) string {
	s := err.Error()
	if strings.Contains(s, "workflow execution already completed") || strings.Contains(s, "completed") {
		return "journey ended"
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

func temporalUI(namespace, tag string) string {
	base := os.Getenv("TEMPORAL_UI_URL")
	if base == "" {
		base = "http://localhost:8233"
	}
	// Running executions only: every stage boundary leaves a
	// continued-as-new run behind, which would crowd the list.
	q := url.QueryEscape(fmt.Sprintf(`CustomerID STARTS_WITH "demo-%s" AND ExecutionStatus = "Running"`, tag))
	return fmt.Sprintf("%s/namespaces/%s/workflows?query=%s", strings.TrimRight(base, "/"), namespace, q)
}

func mailpitUI() string {
	if v := os.Getenv("MAILPIT_UI_URL"); v != "" {
		return v
	}
	return "http://localhost:8025"
}
