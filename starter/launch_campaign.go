package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/workflows"
)

func (a *app) launchCampaignCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "campaign --file FILE",
		Short: "Check a new campaign version and show what deploying it would change",
		Long: `Validates a campaign version file (the same checks the worker makes), compares
it with the versions deployed now (built into starter and in CAMPAIGN_DIR),
and says what would change for journeys once the workers load it:

  - new journeys start on the newest version at once;
  - running journeys keep their version until their next stage boundary,
    then move to the newest one (a sequence in progress is never re-pointed);
  - the versions running journeys use must stay deployed.

It deploys nothing. To deploy, put the file in the workers' CAMPAIGN_DIR and
restart the workers (they load campaigns when they start). Preview the new
version first: starter simulate --campaign-file FILE --script SCRIPT.`,
		Example: `  starter launch campaign --file campaigns/saas-lifecycle-v2.yaml`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("--file is required: the campaign version file (YAML) to check")
			}
			c, err := campaign.LoadFile(file)
			if errors.Is(err, os.ErrNotExist) {
				return usagef("--file %s: no such file", file)
			}
			if err != nil {
				return fmt.Errorf("%s is not a valid campaign version; nothing changed. Fix it and run again:\n%w", file, err)
			}
			reg, err := deployedCampaigns()
			if err != nil {
				return err
			}
			return a.explainCampaign(cmd, file, c, reg)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "campaign version file to check (required)")
	return cmd
}

func (a *app) explainCampaign(cmd *cobra.Command, file string, c *campaign.Campaign, reg *campaign.Registry) error {
	out := cmd.OutOrStdout()
	dir := os.Getenv("CAMPAIGN_DIR")
	fmt.Fprintf(out, "%s: campaign %s, valid (%d templates, each renders).\n\n", file, c.Key(), len(c.Templates))
	versions := reg.Versions(c.ID)
	if existing, err := reg.Get(c.ID, c.Version); err == nil {
		if campaign.SameContent(existing, c) {
			fmt.Fprintf(out, "This exact version is already deployed (%s). Nothing would change.\n", existing.Source)
			return nil
		}
		return fmt.Errorf("version %s of %s is already deployed (%s) with different content: a published version never changes — "+
			"give this file a new version (e.g. raise `version:`), then run again", c.Version, c.ID, existing.Source)
	}
	var latest *campaign.Campaign
	if len(versions) > 0 {
		latest, _ = reg.Get(c.ID, versions[len(versions)-1])
	}
	if latest == nil {
		fmt.Fprintf(out, "No campaign %q is deployed yet: this is a new campaign.\n", c.ID)
		fmt.Fprintf(out, "  - Journeys start on it when they are started with it (starter --campaign %s, the API's -campaign flag).\n", c.ID)
	} else {
		fmt.Fprintf(out, "Deployed versions of %s: %s (newest %s, %s).\n", c.ID, strings.Join(versions, ", "), latest.Version, latest.Source)
		if campaign.CompareVersions(c.Version, latest.Version) < 0 {
			fmt.Fprintf(out, "\nWARNING: %s sorts before the newest deployed version %s, so no journey would move to it:\n"+
				"journeys always take the newest version. Give it a higher version (versions compare like v9 < v10, 2026-02-01 < 2026-11-01).\n",
				c.Version, latest.Version)
		}
		fmt.Fprintf(out, "\nChanges from %s to %s:\n", latest.Key(), c.Key())
		changes := campaign.Diff(latest, c)
		if len(changes) == 0 {
			fmt.Fprintln(out, "  (none apart from the version)")
		}
		for _, ch := range changes {
			fmt.Fprintf(out, "  %s\n", ch)
		}
		fmt.Fprintf(out, "\nOnce the workers load it:\n")
		fmt.Fprintf(out, "  - new journeys start on %s at once;\n", c.Version)
		fmt.Fprintf(out, "  - running journeys stay on their version until their next stage boundary (trial → nurture, a handoff, a purchase...),\n")
		fmt.Fprintf(out, "    then continue on %s; steps of a sequence in progress keep the old version, so nobody gets a step twice or skips one;\n", c.Version)
		fmt.Fprintf(out, "  - keep every deployed version (%s) until no running journey reports it (search attribute CampaignVersion).\n", strings.Join(versions, ", "))
		a.countJourneys(cmd, c.ID, versions)
	}
	fmt.Fprintf(out, "\nTo deploy (this command changed nothing):\n")
	if dir != "" {
		fmt.Fprintf(out, "  cp %s %s/   # CAMPAIGN_DIR of this shell; the workers' must be the same directory\n", file, dir)
	} else {
		fmt.Fprintf(out, "  cp %s \"$CAMPAIGN_DIR\"/   # the directory the workers read campaign files from (CAMPAIGN_DIR; unset here)\n", file)
	}
	fmt.Fprintf(out, "  then restart the workers: they load campaigns when they start.\n")
	fmt.Fprintf(out, "Preview it first: starter simulate --campaign-file %s --script simulate/testdata/jane.yaml\n", file)
	return nil
}

// countJourneys prints how many running journeys use each version, when
// Temporal answers within a few seconds (best effort: the check works
// without it).
func (a *app) countJourneys(cmd *cobra.Command, id string, versions []string) {
	out := cmd.OutOrStdout()
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	if err := a.connectCtx(ctx); err != nil {
		fmt.Fprintf(out, "  (running journeys per version not counted: %s)\n", shortErr(err))
		return
	}
	defer a.close()
	for _, v := range versions {
		q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND CampaignVersion = '%s@%s'",
			workflows.WorkflowName, escapeQuery(id), escapeQuery(v))
		res, err := a.client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: a.cfg.Temporal.Namespace, Query: q})
		if err != nil {
			fmt.Fprintf(out, "  (running journeys per version not counted: %s)\n", shortErr(err))
			return
		}
		fmt.Fprintf(out, "  running journeys on %s@%s: %d\n", id, v, res.GetCount())
	}
}

func escapeQuery(s string) string { return strings.ReplaceAll(s, "'", "\\'") }
