package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/report"
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
	var since, until, campaignID, tag, compare string
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
cohort), --until DATE those who started before it; --campaign ID those on
one campaign; --tag TAG those whose contact has the tag (webinar-2026,
product:analytics).

Each step is measured against the campaign's targets (its "targets:" list:
a minimum conversion, a maximum median time in stage), and the steps below
target are listed at the end. --compare previous shows, next to each step,
the period of the same length just before --since (needs --since).
Only reads; changes nothing.`,
		Example: `  starter report funnel
  starter report funnel --since 2026-01-01 --campaign saas-lifecycle
  starter report funnel --tag webinar-2026
  starter report funnel --since 2026-11-01 --until 2026-12-01 --compare previous
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
			if until != "" {
				t, err := parseDate(until)
				if err != nil {
					return usagef("--until %v", err)
				}
				q.Until = t
			}
			switch {
			case compare != "" && compare != "previous":
				return usagef("--compare %q: the one comparison is \"previous\" (the period just before --since)", compare)
			case compare != "" && since == "":
				return usagef("--compare previous needs --since: the period to compare is --since to --until (or now)")
			case !q.Until.IsZero() && !q.Until.After(q.Since):
				return usagef("--until %s is not after --since %s", until, since)
			}
			targets, err := funnelTargets(campaignID)
			if err != nil {
				return err
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
			f, err := funnel(ctx, store, q)
			if err != nil {
				return err
			}
			var prev *crm.Funnel
			if compare == "previous" {
				end := q.Until
				if end.IsZero() {
					end = time.Now()
				}
				pq := q
				pq.Since, pq.Until = report.PreviousPeriod(q.Since, end)
				p, err := funnel(ctx, store, pq)
				if err != nil {
					return err
				}
				prev = &p
			}
			r := report.Build(f, prev, targets)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return report.WriteText(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only customers whose journey started on or after DATE (2026-01-01 or RFC 3339)")
	f.StringVar(&campaignID, "campaign", "", "only customers on this campaign id")
	f.StringVar(&tag, "tag", "", "only customers whose contact has this tag")
	f.StringVar(&until, "until", "", "only customers whose journey started before DATE")
	f.StringVar(&compare, "compare", "", `"previous": show the period of the same length before --since next to each step`)
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// funnel reads one funnel from the CRM.
func funnel(ctx context.Context, store *crm.Store, q crm.FunnelQuery) (crm.Funnel, error) {
	f, err := store.Funnel(ctx, q)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return f, fmt.Errorf("%w\nthe database at DATABASE_URL has no CRM tables: point DATABASE_URL at the worker's database (the worker creates the tables when it starts)", err)
		}
		return f, err
	}
	return f, nil
}

// funnelTargets are the stage targets of the campaign (the latest version
// deployed), or of the default campaign when the report is not limited to
// one.
func funnelTargets(campaignID string) ([]campaign.Target, error) {
	if campaignID == "" {
		campaignID = defaultCampaign
	}
	r, err := deployedCampaigns()
	if err != nil {
		return nil, err
	}
	c, err := r.Latest(campaignID)
	if err != nil {
		// A campaign this binary does not know has no targets here; the
		// report still reads the CRM.
		return nil, nil //nolint:nilerr // no targets is a valid answer
	}
	return c.Targets, nil
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
