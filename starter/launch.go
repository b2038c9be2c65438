package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/acme/lifecycle/workflows"
)

func (a *app) launchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Launch a broadcast, or check a new campaign version before deploying it",
		RunE:  needSubcommand("launch", "broadcast", "campaign"),
	}
	cmd.AddCommand(a.launchBroadcastCmd(), a.launchCampaignCmd())
	return cmd
}

func (a *app) launchBroadcastCmd() *cobra.Command {
	var b broadcastFlags
	var id string
	var wait bool
	cmd := &cobra.Command{
		Use:   "broadcast --id ID --template T [--campaign ID] [--stage active ...] [--min-score N] [--tag T ...] [--rate N] [--wait]",
		Short: "Send a one-off message (greeting, announcement) to a CRM segment",
		Long: `Starts a broadcast: the worker sends the template to every contact of the
segment page by page, exactly once per recipient, applying consent, the
suppression list and the frequency cap (and quiet hours with
--respect-quiet-hours). Progress shows in the Temporal UI (workflow
broadcast/ID) and, with --wait, here.

The id names the broadcast for good: a recipient gets a broadcast id's message
at most once, ever. Starting an id that is running or completed is refused;
one that failed or was cancelled may be started again and skips whoever got it.

--wait without --template follows a broadcast that was started before.`,
		Example: `  starter launch broadcast --id summer-2026 --template holiday_midyear --stage active --rate 50 --wait
  starter launch broadcast --id webinar-invite --template webinar_live_demo --stage nurture --min-score 25
  starter launch broadcast --id webinar-followup --template webinar_live_demo --tag webinar-2026 --tag product:analytics
  starter launch broadcast --id summer-2026 --wait     # follow it again`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usagef("--id is required: a name for this broadcast, e.g. --id summer-2026 (it is used once: recipients get it at most once)")
			}
			if b.template == "" && wait {
				if err := a.connect(); err != nil {
					return err
				}
				defer a.close()
				return a.follow(cmd, id, nil)
			}
			in, _, err := b.input(id, "--id", "")
			if err != nil {
				return err
			}
			if err := a.connect(); err != nil {
				return err
			}
			defer a.close()
			run, err := workflows.StartBroadcast(cmd.Context(), a.client, a.cfg.Temporal.TaskQueue, in)
			if err != nil {
				if errors.Is(err, workflows.ErrBroadcastAlreadyStarted) {
					return fmt.Errorf("%w\n(to watch it: starter launch broadcast --id %s --wait)", err, id)
				}
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "broadcast %s started: %s\n", id, describeInput(in))
			fmt.Fprintf(out, "  workflow  %s (run %s) on task queue %s\n", workflows.BroadcastWorkflowID(id), run.GetRunID(), a.cfg.Temporal.TaskQueue)
			fmt.Fprintf(out, "  UI        %s\n", workflowURL(a.cfg.Temporal.Namespace, workflows.BroadcastWorkflowID(id)))
			if !wait {
				fmt.Fprintf(out, "  follow    starter launch broadcast --id %s --wait\n", id)
				return nil
			}
			return a.follow(cmd, id, run)
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "broadcast id (required): letters, digits, . _ : -; used once")
	b.register(f, false)
	f.BoolVar(&wait, "wait", false, "show progress every second until the broadcast is done")
	return cmd
}

// follow shows a broadcast's progress every second until it is done.
func (a *app) follow(cmd *cobra.Command, id string, run client.WorkflowRun) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	if run == nil {
		run = a.client.GetWorkflow(ctx, workflows.BroadcastWorkflowID(id), "")
	}
	ended := make(chan error, 1)
	go func() {
		var p workflows.BroadcastProgress
		ended <- run.Get(ctx, &p)
	}()
	tty := isTerminal(stderr)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last string
	lastPrint := time.Time{}
	waiting := false
	show := func(p workflows.BroadcastProgress) {
		line := fmt.Sprintf("sent %d · duplicate %d · suppressed %d · failed %d · deferred %d · %s",
			p.Sent, p.Duplicate, p.Suppressed, p.Failed, p.Deferred, pages(p.Pages))
		switch {
		case tty:
			fmt.Fprintf(stderr, "\r\033[K  %s", line)
		case line != last || time.Since(lastPrint) > 30*time.Second:
			fmt.Fprintf(stderr, "  %s\n", line)
			lastPrint = time.Now()
		}
		last = line
	}
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(stderr)
			}
			return fmt.Errorf("stopped watching; the broadcast goes on in the worker (starter launch broadcast --id %s --wait follows it again)", id)
		case err := <-ended:
			if tty {
				fmt.Fprintln(stderr)
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p, perr := workflows.GetBroadcastProgress(qctx, a.client, id)
			cancel()
			if err != nil {
				return fmt.Errorf("broadcast %s failed: %w\n(the workflow's history in the Temporal UI says why: %s; fix the cause and start it again with the same --id: whoever got it is skipped)",
					id, err, workflowURL(a.cfg.Temporal.Namespace, workflows.BroadcastWorkflowID(id)))
			}
			if perr == nil {
				printProgress(cmd.OutOrStdout(), id, p)
			}
			return nil
		case <-tick.C:
			qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			p, err := workflows.GetBroadcastProgress(qctx, a.client, id)
			cancel()
			if err != nil {
				if !waiting {
					fmt.Fprintf(stderr, "  waiting for a worker on task queue %s to answer (%v)\n", a.cfg.Temporal.TaskQueue, shortErr(err))
					waiting = true
				}
				continue
			}
			waiting = false
			show(p)
		}
	}
}

func printProgress(w io.Writer, id string, p workflows.BroadcastProgress) {
	took := ""
	if !p.FinishedAt.IsZero() {
		took = " in " + p.FinishedAt.Sub(p.StartedAt).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "broadcast %s done%s: %d recipients — sent %d, duplicate %d, suppressed %d, failed %d, deferred %d (%s)\n",
		id, took, p.Recipients(), p.Sent, p.Duplicate, p.Suppressed, p.Failed, p.Deferred, pages(p.Pages))
	if p.Deferred > 0 {
		fmt.Fprintf(w, "  %d deferred (frequency cap or quiet hours) were not sent; a new broadcast id reaches them later\n", p.Deferred)
	}
}

func pages(n int) string {
	if n == 1 {
		return "1 page"
	}
	return fmt.Sprintf("%d pages", n)
}

func workflowURL(namespace, workflowID string) string {
	base := os.Getenv("TEMPORAL_UI_URL")
	if base == "" {
		base = "http://localhost:8233"
	}
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s", strings.TrimRight(base, "/"), url.PathEscape(namespace), url.PathEscape(workflowID))
}
