package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acme/lifecycle/campaign"
)

// deployedCampaigns loads the campaigns a worker started now would hold:
// the ones built into the binary and those in CAMPAIGN_DIR.
func deployedCampaigns() (*campaign.Registry, error) {
	r := campaign.NewRegistry()
	if err := r.LoadEmbedded(); err != nil {
		return nil, fmt.Errorf("built-in campaigns: %w", err)
	}
	if dir := os.Getenv("CAMPAIGN_DIR"); dir != "" {
		if err := r.LoadDir(dir); err != nil {
			return nil, fmt.Errorf("CAMPAIGN_DIR=%s: %w\n(a worker would refuse to start with these files too: fix or remove the bad one)", dir, err)
		}
	}
	return r, nil
}

// pickCampaign resolves "ID" (the latest version) or "ID@VERSION".
func pickCampaign(r *campaign.Registry, ref string) (*campaign.Campaign, error) {
	id, version, pinned := strings.Cut(ref, "@")
	if id == "" {
		return nil, usagef("--campaign: give a campaign id, e.g. --campaign %s (or ID@VERSION)", defaultCampaign)
	}
	var c *campaign.Campaign
	var err error
	if pinned {
		c, err = r.Get(id, version)
	} else {
		c, err = r.Latest(id)
	}
	if err != nil {
		where := "built into starter"
		if dir := os.Getenv("CAMPAIGN_DIR"); dir != "" {
			where += " or in CAMPAIGN_DIR=" + dir
		} else {
			where += "; set CAMPAIGN_DIR to the workers' campaign directory to see theirs"
		}
		return nil, &usageError{fmt.Errorf("--campaign %s: %w (campaigns %s)", ref, err, where)}
	}
	return c, nil
}

// parseSpan parses a span of journey time: a campaign duration ("90d",
// "12w", "36h") or years ("1y" = 365 days).
func parseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "y"); ok {
		if years, err := strconv.ParseFloat(n, 64); err == nil && years > 0 && years <= 100 {
			return time.Duration(years * 365 * float64(24*time.Hour)), nil
		}
		return 0, fmt.Errorf("%q: write e.g. 1y, 90d, 12w or 36h", s)
	}
	d, err := campaign.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%v: write e.g. 1y, 90d, 12w or 36h", err)
	}
	return d, nil
}
