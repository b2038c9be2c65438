package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/simulate"
)

const simulateLong = `Runs a campaign against a scripted customer and prints, in seconds, what the
journey would do: every email with its day and local time, template and
subject (rendered from the campaign, so a template that fails for this
customer shows up), stage changes and why, sends held by quiet hours or the
frequency cap, skipped sends and why, and the final stage and score.

It uses the real journey workflow in Temporal's time-skipping test
environment, with an in-memory CRM and mailer: nothing is sent, no server is
needed, a year takes well under a second.

The campaign is a file (--campaign-file, e.g. a new version before you
deploy it) or a deployed one (--campaign ID or ID@VERSION: built into
starter, or in CAMPAIGN_DIR).

The script is a small YAML file:

  start: 2026-03-02T08:00:00Z      # optional; default 2026-03-02T09:00:00Z
  customer:
    id: jane                       # required
    email: jane@example.com        # required
    first_name: Jane
    last_name: Doe
    company: Example GmbH
    role: cto                      # scored by the campaign's fit rules
    company_size: 250
    time_zone: Europe/Berlin       # IANA name; default: the campaign's
    lead_source: connected         # current_customer, referral, connected, expert, search_ads, cold
    owner_email: anna@acme.example # account owner (default: the campaign's sales owner)
  signup: {day: 0}                 # optional; events before it wait (pending)
  events:
    - {day: 1, type: pricing_viewed}          # days after start; fractions allowed
    - {day: 5.5, type: demo_requested}
    - {at: "2026-03-10T10:00:00Z", type: deal_won}
    - {day: 6, type: email_opened, id: o1}    # the same id twice counts once

Examples are in simulate/testdata/ (jane.yaml, ben.yaml).

Exit status: 0 when the simulation ran; 1 when a template failed to render
(the timeline is still printed, with the failed lines marked ✗) or the
journey failed; 2 when the command line or the script is wrong.`

func (a *app) simulateCmd() *cobra.Command {
	var file, campaignRef, scriptPath, until string
	var asJSON, verbose bool
	cmd := &cobra.Command{
		Use:   "simulate --script FILE [--campaign-file FILE | --campaign ID] [--until 90d] [--json]",
		Short: "Preview a campaign against a scripted customer: what would be sent when",
		Long:  simulateLong,
		Example: `  starter simulate --script simulate/testdata/jane.yaml
  starter simulate --campaign-file campaigns/saas-lifecycle-v2.yaml --script jane.yaml --until 1y
  starter simulate --campaign saas-lifecycle@v1 --script jane.yaml --json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scriptPath == "" {
				return usagef("--script is required: the YAML file that scripts the customer and their events (format: starter simulate --help; examples in simulate/testdata/)")
			}
			if file != "" && cmd.Flags().Changed("campaign") {
				return usagef("give --campaign-file (a campaign file) or --campaign (a deployed campaign), not both")
			}
			span, err := parseSpan(until)
			if err != nil || span <= 0 {
				return usagef("--until: %v", orErr(err, "must be positive"))
			}
			c, err := loadPreviewCampaign(file, campaignRef)
			if err != nil {
				return err
			}
			script, err := simulate.LoadScript(scriptPath)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return usagef("--script %s: no such file", scriptPath)
				}
				return &usageError{fmt.Errorf("the script has problems (fix them and run again):\n%w", err)}
			}
			if err := script.CheckEvents(c); err != nil {
				return &usageError{fmt.Errorf("the script has problems (fix them and run again):\n%w", err)}
			}
			return runSimulation(cmd, c, script, span, asJSON, verbose)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scriptPath, "script", "", "YAML file scripting the customer and their events (required)")
	f.StringVar(&file, "campaign-file", "", "campaign definition file to preview (default: the deployed --campaign)")
	f.StringVar(&campaignRef, "campaign", defaultCampaign, "deployed campaign to preview: ID (latest version) or ID@VERSION")
	f.StringVar(&until, "until", "90d", "how much journey time to simulate, e.g. 30d, 12w, 1y")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&verbose, "verbose", false, "show the Temporal test environment's warnings on stderr")
	return cmd
}

func loadPreviewCampaign(file, ref string) (*campaign.Campaign, error) {
	if file == "" {
		r, err := deployedCampaigns()
		if err != nil {
			return nil, err
		}
		return pickCampaign(r, ref)
	}
	c, err := campaign.LoadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("--campaign-file %s: no such file", file)
	}
	if err != nil {
		return nil, fmt.Errorf("the campaign file has problems (fix them and run again):\n%w", err)
	}
	return c, nil
}

func runSimulation(cmd *cobra.Command, c *campaign.Campaign, script *simulate.Script, span time.Duration, asJSON, verbose bool) error {
	stderr := cmd.ErrOrStderr()
	days := int(span / (24 * time.Hour))
	fmt.Fprintf(stderr, "simulating %s for %s over %d days of journey time...\n", c.Key(), script.Customer.ID, days)
	opts := simulate.Options{Campaign: c, Script: script, Until: span}
	if verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	tty := isTerminal(stderr)
	if tty {
		last := time.Now()
		opts.Progress = func(done, _ time.Duration) {
			if time.Since(last) < 100*time.Millisecond {
				return
			}
			last = time.Now()
			fmt.Fprintf(stderr, "\r  day %d of %d", int(done/(24*time.Hour)), days)
		}
	}
	started := time.Now()
	res, err := simulate.Run(cmd.Context(), opts)
	if tty {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if res == nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		if werr := res.WriteJSON(out); werr != nil {
			return werr
		}
	} else if werr := res.WriteText(out); werr != nil {
		return werr
	}
	fmt.Fprintf(stderr, "simulated %d days in %s (%d workflow runs)\n", days, time.Since(started).Round(time.Millisecond), res.Runs)
	if errors.Is(err, simulate.ErrTemplates) {
		src := c.Source
		if src == "" {
			src = "the campaign"
		}
		return fmt.Errorf("%w; fix the template(s) in %s (the ✗ FAILED lines name template and part) and run again", err, src)
	}
	return err
}

// isTerminal reports whether w is a terminal (progress lines that rewrite
// themselves only make sense there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func orErr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}
