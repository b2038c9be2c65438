// Command starter is the command-line tool for marketers and engineers:
// sign customers up, send events, inspect a journey, run the demo; preview
// a campaign against a scripted customer (simulate), see the funnel
// (report funnel), launch a campaign version or a broadcast (launch) and
// manage recurring broadcasts (schedule).
//
// It reads the same environment as the worker (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, DATABASE_URL, CAMPAIGN_DIR,
// TIME_SCALE, ...); see README and docs/cli.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/acme/lifecycle/config"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/internal/temporalclient"
	"github.com/acme/lifecycle/privacy"
	"github.com/acme/lifecycle/workflows"
)

// defaultCampaign is the campaign journeys start on unless told otherwise.
const defaultCampaign = "saas-lifecycle"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitFailed = 1 // the command ran and failed
	exitUsage  = 2 // the command line is wrong
)

// run executes the command line and returns the exit code. Errors go to
// stderr as "starter <command>: what went wrong", with a pointer to --help
// when the command line itself is wrong.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	name := "starter"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if isUsage(err) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
		return exitUsage
	}
	return exitFailed
}

// usageError is a wrong command line (missing or bad flag or argument).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef makes a usage error; say what is wrong and what to write instead.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func isUsage(err error) bool {
	var ue *usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "required flag") || strings.HasPrefix(msg, "unknown command") ||
		strings.HasPrefix(msg, "unknown flag") || strings.HasPrefix(msg, "unknown shorthand flag")
}

// exactArgs wants the named positional arguments (none when no names).
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == len(names):
			return nil
		case len(names) == 0:
			return usagef("takes no arguments, got %q (options are --flags; see --help)", args)
		}
		return usagef("want %s, got %d argument(s): %q", strings.Join(names, " "), len(args), args)
	}
}

// needSubcommand is the RunE of a command that only groups subcommands.
func needSubcommand(name string, subs ...string) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown %s command %q; the commands are: %s", name, args[0], strings.Join(subs, ", "))
		}
		return usagef("name a command: starter %s %s", name, strings.Join(subs, "|"))
	}
}

type app struct {
	cfg        config.Config
	campaignID string
	client     client.Client
	// enc is the payload encryption the client uses (the worker's own).
	enc *temporalclient.Encryption
}

// dataConverter decodes payloads that the SDK hands over as stored
// (a schedule's memo and arguments): encrypted, like everything starter
// and the worker write.
func (a *app) dataConverter() converter.DataConverter { return privacy.DataConverter(a.enc.Codec) }

// close closes what connect opened.
func (a *app) close() {
	a.client.Close()
	a.enc.Close()
}

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Run and inspect lifecycle campaign journeys",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentFlags().StringVar(&a.campaignID, "campaign", defaultCampaign, "campaign id new journeys start on")
	root.AddCommand(a.signupCmd(), a.eventCmd(), a.statusCmd(), a.demoCmd(),
		a.simulateCmd(), a.reportCmd(), a.scheduleCmd(), a.launchCmd(),
		a.eraseCmd(), a.rotateKEKCmd())
	return root
}

// connect loads the configuration and dials Temporal once per command.
func (a *app) connect() error { return a.connectCtx(context.Background()) }

// connectCtx is connect, giving up when ctx ends.
func (a *app) connectCtx(ctx context.Context) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	a.cfg = cfg
	enc, err := temporalclient.NewEncryption(cfg)
	if err != nil {
		return err
	}
	opts, err := enc.Options(cfg.Temporal)
	if err != nil {
		enc.Close()
		return err
	}
	opts.Logger = quietLogger{}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		enc.Close()
		return fmt.Errorf("connect to Temporal at %s: %w (is the stack up? run `make up`, or set TEMPORAL_ADDRESS)", cfg.Temporal.Address, err)
	}
	a.client, a.enc = c, enc
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
		Args:  exactArgs("CUSTOMER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.CustomerID = args[0]
			s.At = time.Now()
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
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
	f.StringVar(&s.LeadSource, "lead-source", "", "one of "+strings.Join(customer.LeadSources, ", "))
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
		Args:  exactArgs("CUSTOMER_ID", "TYPE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[1] == customer.EventErase {
				// An erase is more than a journey event (package erasure).
				return usagef("to erase a customer run `starter erase %s`", args[0])
			}
			e := workflows.Event{ID: id, Type: args[1], At: time.Now()}
			if e.ID == "" {
				e.ID = fmt.Sprintf("cli-%s-%d", args[1], time.Now().UnixNano())
			}
			for _, p := range props {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return usagef("--prop %q: want key=value", p)
				}
				if e.Properties == nil {
					e.Properties = map[string]any{}
				}
				e.Properties[k] = v
			}
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
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
		Args:  exactArgs("CUSTOMER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
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
	if len(v.Tags) > 0 {
		fmt.Printf("tags       %s\n", strings.Join(v.Tags, ", "))
	}
	if v.NPSScore != nil || v.Advocate || len(v.AsksEnded) > 0 {
		said := fmt.Sprintf("advocate %t, detractor %t", v.Advocate, v.Detractor)
		if v.NPSScore != nil {
			said = fmt.Sprintf("NPS %d, %s", *v.NPSScore, said)
		}
		if len(v.AsksEnded) > 0 {
			said += "; asks ended: " + strings.Join(v.AsksEnded, ", ")
		}
		fmt.Printf("feedback   %s\n", said)
	}
	for _, key := range slices.Sorted(maps.Keys(v.Dates)) {
		fmt.Printf("date       %s = %s (reminders follow it)\n", key, v.Dates[key])
	}
	if v.Deferred > 0 {
		fmt.Printf("held       %d email(s) the send ledger holds under the contact policy\n", v.Deferred)
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
