// Command starter is the command-line tool for marketers and engineers:
// sign customers up, send events, inspect a journey, and run the demo.
//
// It reads the same environment as the worker (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TIME_SCALE, ...); see README.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/workflows"
)

// defaultCampaign is the campaign journeys start on unless told otherwise.
const defaultCampaign = "saas-lifecycle"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(1)
	}
}

type app struct {
	cfg        config.Config
	campaignID string
	client     client.Client
}

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Run and inspect lifecycle campaign journeys",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.campaignID, "campaign", defaultCampaign, "campaign id new journeys start on")
	root.AddCommand(a.signupCmd(), a.eventCmd(), a.statusCmd(), a.demoCmd())
	return root
}

// connect loads the configuration and dials Temporal once per command.
func (a *app) connect() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	a.cfg = cfg
	c, err := client.Dial(client.Options{HostPort: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace, Logger: quietLogger{}})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w (is the stack up? run `make up`)", cfg.Temporal.Address, err)
	}
	a.client = c
	return nil
}

func (a *app) starter() workflows.Starter {
	return workflows.Starter{Client: a.client, TaskQueue: a.cfg.Temporal.TaskQueue, CampaignID: a.campaignID, TimeScale: a.cfg.TimeScale}
}

func (a *app) signupCmd() *cobra.Command {
	var s workflows.Signup
	cmd := &cobra.Command{
		Use:   "signup CUSTOMER_ID --email ADDRESS [flags]",
		Short: "Sign a customer up for a trial (starts the journey once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.CustomerID = args[0]
			s.At = time.Now()
			if err := a.connect(); err != nil {
				return err
			}
			defer a.client.Close()
			run, err := a.starter().Signup(cmd.Context(), s)
			if err != nil {
				return err
			}
			fmt.Printf("journey %s (run %s) signed up\n", workflows.JourneyID(s.CustomerID), run.GetRunID())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Email, "email", "", "email address (required)")
	f.StringVar(&s.FirstName, "first-name", "", "first name")
	f.StringVar(&s.LastName, "last-name", "", "last name")
	f.StringVar(&s.Company, "company", "", "company")
	f.StringVar(&s.Role, "role", "", "role, e.g. cto")
	f.IntVar(&s.CompanySize, "company-size", 0, "employees")
	f.StringVar(&s.TimeZone, "time-zone", "", "IANA time zone, e.g. Europe/Berlin")
	f.StringVar(&s.LeadSource, "lead-source", "", "one of "+strings.Join(workflows.LeadSources, ", "))
	f.StringVar(&s.OwnerEmail, "owner", "", "account owner's email")
	_ = cmd.MarkFlagRequired("email")
	return cmd
}

func (a *app) eventCmd() *cobra.Command {
	var id string
	var props []string
	cmd := &cobra.Command{
		Use:   "event CUSTOMER_ID TYPE [--id EVENT_ID] [--prop key=value]...",
		Short: "Send a CRM/product event into a customer's journey",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := workflows.Event{ID: id, Type: args[1], At: time.Now()}
			if e.ID == "" {
				e.ID = fmt.Sprintf("cli-%s-%d", args[1], time.Now().UnixNano())
			}
			for _, p := range props {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--prop %q: want key=value", p)
				}
				if e.Properties == nil {
					e.Properties = map[string]any{}
				}
				e.Properties[k] = v
			}
			if err := a.connect(); err != nil {
				return err
			}
			defer a.client.Close()
			if err := a.starter().Events(cmd.Context(), args[0], e); err != nil {
				return err
			}
			fmt.Printf("event %s (%s) sent to %s\n", e.ID, e.Type, workflows.JourneyID(args[0]))
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "event id (deduplicates; generated when empty)")
	cmd.Flags().StringArrayVar(&props, "prop", nil, "event property key=value (repeatable)")
	return cmd
}

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status CUSTOMER_ID",
		Short: "Show a journey: stage, score and why, next step, recent timeline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			defer a.client.Close()
			v, err := workflows.State(cmd.Context(), a.client, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			printView(v)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printView(v workflows.JourneyView) {
	fmt.Printf("customer   %s\ncampaign   %s@%s\nstage      %s (since %s)\nscore      %d = fit %d + behaviour %d (threshold %d)\n",
		v.CustomerID, v.CampaignID, v.CampaignVersion, v.Stage, v.StageEnteredAt.Format(time.DateTime),
		v.Score, v.FitScore, v.BehaviourScore, v.Threshold)
	if len(v.TopReasons) > 0 {
		parts := make([]string, len(v.TopReasons))
		for i, r := range v.TopReasons {
			parts[i] = fmt.Sprintf("%s %+d", r.Source, r.Points)
		}
		fmt.Printf("why        %s\n", strings.Join(parts, ", "))
	}
	next := v.NextStep
	if !v.NextAt.IsZero() {
		next += " at " + v.NextAt.Format(time.DateTime)
	}
	fmt.Printf("next       %s\n\ntimeline (journey time)\n", next)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	for _, e := range v.Timeline {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.At.Format(time.DateTime), e.Kind, e.Detail)
	}
	_ = tw.Flush()
}
