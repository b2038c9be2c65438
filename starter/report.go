package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
)

func (a *app) reportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Reports from the CRM (funnel)",
		RunE:  needSubcommand("report", "funnel"),
	}
	cmd.AddCommand(a.funnelCmd())
	return cmd
}

func (a *app) funnelCmd() *cobra.Command {
	var since, campaignID, tag string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "funnel [--since DATE] [--campaign ID] [--tag TAG] [--json]",
		Short: "Customers per stage, conversion between stages, median time in stage",
		Long: `Reads the CRM (contacts and stage_transitions in DATABASE_URL, the worker's
database) and prints:

  - customers per current stage;
  - conversion between stages: of the customers who entered stage A, how many
    entered stage B afterwards (trial → nurture, trial/nurture → sales,
    sales → onboarding, onboarding → active, active → at_risk,
    at_risk → active (reactivated), at_risk → churned, churned → active);
  - the median time a stay in each stage lasted (stays still going on are
    not counted).

--since DATE keeps the customers whose journey started on or after DATE (a
cohort); --campaign ID those on one campaign; --tag TAG those whose contact
has the tag (webinar-2026, product:analytics). Only reads; changes nothing.`,
		Example: `  starter report funnel
  starter report funnel --since 2026-01-01 --campaign saas-lifecycle
  starter report funnel --tag webinar-2026
  starter report funnel --json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := crm.FunnelQuery{CampaignID: campaignID, Tag: tag}
			if tag != "" {
				// Checked before connecting, so a typo is a usage error.
				if err := customer.CheckTag("tag", tag); err != nil {
					var fe *customer.FieldError
					if errors.As(err, &fe) {
						return usagef("--tag %s", fe.Problem)
					}
					return usagef("--tag: %v", err)
				}
			}
			if since != "" {
				t, err := parseDate(since)
				if err != nil {
					return usagef("--since %v", err)
				}
				q.Since = t
			}
			cfg, err := config.Load()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			fmt.Fprintf(cmd.ErrOrStderr(), "reading the funnel from the CRM at %s...\n", dbName(cfg.DatabaseURL.Value()))
			store, err := crm.Open(ctx, cfg.DatabaseURL.Value())
			if err != nil {
				return fmt.Errorf("cannot reach the CRM database: %w\nset DATABASE_URL to the CRM's postgres:// URL (the worker's), or start the local stack with `make up`", err)
			}
			defer store.Close()
			f, err := store.Funnel(ctx, q)
			if err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
					return fmt.Errorf("%w\nthe database at DATABASE_URL has no CRM tables: point DATABASE_URL at the worker's database (the worker creates the tables when it starts)", err)
				}
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(f)
			}
			return printFunnel(cmd.OutOrStdout(), f)
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only customers whose journey started on or after DATE (2026-01-01 or RFC 3339)")
	f.StringVar(&campaignID, "campaign", "", "only customers on this campaign id")
	f.StringVar(&tag, "tag", "", "only customers whose contact has this tag")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: write a date like 2026-01-01 (UTC) or a time like 2026-01-01T00:00:00+01:00", s)
}

// dbName names the database without credentials: host/db.
func dbName(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil || u.Host == "" {
		return "DATABASE_URL"
	}
	return u.Host + u.Path
}

func printFunnel(w io.Writer, f crm.Funnel) error {
	scope := "all customers"
	if !f.Since.IsZero() {
		scope = "customers whose journey started since " + f.Since.Format(time.DateOnly)
	}
	if f.CampaignID != "" {
		scope += " on campaign " + f.CampaignID
	}
	if f.Tag != "" {
		scope += " tagged " + f.Tag
	}
	fmt.Fprintf(w, "Funnel of %s: %d customers\n\n", scope, f.Customers)
	if f.Customers == 0 {
		fmt.Fprintln(w, "No customers match: no journey has recorded a stage yet for this selection.")
		return nil
	}
	var rows [][]string
	for _, st := range f.Stages {
		rows = append(rows, []string{st.Stage, fmt.Sprint(st.Customers), fmt.Sprintf("%.1f%%", 100*float64(st.Customers)/float64(f.Customers))})
	}
	table(w, []string{"stage", "customers", "share"}, rows)

	rows = rows[:0]
	for _, c := range f.Conversions {
		rate := "-"
		if c.Entered > 0 {
			rate = fmt.Sprintf("%.1f%%", 100*c.Rate)
		}
		rows = append(rows, []string{c.Name(), fmt.Sprint(c.Entered), fmt.Sprint(c.Converted), rate})
	}
	fmt.Fprintln(w)
	table(w, []string{"conversion", "entered", "then", "rate"}, rows)

	rows = rows[:0]
	for _, st := range f.TimeInStage {
		rows = append(rows, []string{st.Stage, fmt.Sprint(st.Stays), humanDuration(st.Median)})
	}
	fmt.Fprintln(w)
	if len(rows) == 0 {
		fmt.Fprintln(w, "time in stage: no completed stays yet")
		return nil
	}
	table(w, []string{"time in stage", "stays", "median"}, rows)
	return nil
}

// table prints rows with the first column left-aligned and the others
// right-aligned.
func table(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString("  " + c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
}

// humanDuration rounds for reading: minutes under a day, hours above.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		d = d.Round(time.Hour)
	case d >= time.Minute:
		d = d.Round(time.Minute)
	default:
		d = d.Round(time.Second)
	}
	if d == 0 {
		return "0"
	}
	return campaign.FormatDuration(d)
}
