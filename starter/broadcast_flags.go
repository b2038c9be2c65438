package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/acme/lifecycle/campaign"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/workflows"
)

// broadcastFlags are the flags that describe a broadcast (launch broadcast
// and schedule create share them).
type broadcastFlags struct {
	campaign          string
	template          string
	stages            []string
	minScore          optionalInt
	leadSources       []string
	idPrefix          string
	tags              []string
	all               bool
	rate              int
	pageSize          int
	respectQuietHours bool
}

// register adds the flags; segment flags get both spellings (--stage and
// --segment-stage), the other one hidden.
func (b *broadcastFlags) register(f *pflag.FlagSet, segmentPrefix bool) {
	f.StringVar(&b.campaign, "campaign", defaultCampaign, "campaign holding the template: ID (latest version when sending) or ID@VERSION")
	f.StringVar(&b.template, "template", "", "template id in the campaign (required)")
	names := map[string]string{"stage": "segment-stage", "min-score": "segment-min-score", "lead-source": "segment-lead-source",
		"id-prefix": "segment-id-prefix", "tag": "segment-tag"}
	for short, long := range names {
		primary, alias := short, long
		if segmentPrefix {
			primary, alias = long, short
		}
		for _, name := range []string{primary, alias} {
			switch short {
			case "stage":
				f.StringSliceVar(&b.stages, name, nil, "segment: contacts in this stage (repeatable, or comma-separated): "+strings.Join(stageNames(), ", "))
			case "min-score":
				f.Var(&b.minScore, name, "segment: contacts with at least this lead score")
			case "lead-source":
				f.StringSliceVar(&b.leadSources, name, nil, "segment: contacts from this lead source (repeatable): "+strings.Join(customer.LeadSources, ", "))
			case "id-prefix":
				f.StringVar(&b.idPrefix, name, "", "segment: customer ids starting with this")
			case "tag":
				f.StringSliceVar(&b.tags, name, nil, "segment: contacts with this tag (repeatable, or comma-separated: contacts with all of them)")
			}
		}
		_ = f.MarkHidden(alias)
	}
	f.BoolVar(&b.all, "all-contacts", false, "send to every contact with marketing consent (no segment filter)")
	f.IntVar(&b.rate, "rate", 0, "emails per second at most (0: as fast as the worker's SMTP connections go)")
	f.IntVar(&b.pageSize, "page-size", 0, fmt.Sprintf("contacts per page (default %d, at most %d)", workflows.DefaultBroadcastPageSize, workflows.MaxBroadcastPageSize))
	f.BoolVar(&b.respectQuietHours, "respect-quiet-hours", false, "skip (defer) recipients inside the campaign's quiet hours in their time zone")
}

// optionalInt is an int flag that may be absent.
type optionalInt struct{ v *int }

func (o *optionalInt) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.Itoa(*o.v)
}

func (o *optionalInt) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a whole number")
	}
	o.v = &n
	return nil
}

func (o *optionalInt) Type() string { return "int" }

func stageNames() []string {
	return []string{"trial", "nurture", "sales", "onboarding", "active", "at_risk", "churned"}
}

// input builds and checks the broadcast input; errors say which flag.
func (b *broadcastFlags) input(id, idName, stagePrefix string) (workflows.BroadcastInput, *campaign.Campaign, error) {
	if b.template == "" {
		return workflows.BroadcastInput{}, nil, usagef("--template is required: the id of the email template in campaign %s", b.campaign)
	}
	seg := workflows.BroadcastSegment{Stages: b.stages, LeadSources: b.leadSources, CustomerIDPrefix: b.idPrefix, Tags: b.tags}
	seg.MinScore = b.minScore.v
	filtered := len(seg.Stages) > 0 || seg.MinScore != nil || len(seg.LeadSources) > 0 || seg.CustomerIDPrefix != "" || len(seg.Tags) > 0
	if !b.all && !filtered {
		return workflows.BroadcastInput{}, nil, usagef("say who gets it: --%sstage active (repeatable), --%smin-score N, --%slead-source SOURCE, --%sid-prefix P, --%stag TAG (repeatable), or --all-contacts for everyone with marketing consent",
			stagePrefix, stagePrefix, stagePrefix, stagePrefix, stagePrefix)
	}
	if b.all && filtered {
		return workflows.BroadcastInput{}, nil, usagef("--all-contacts and segment flags exclude each other")
	}
	reg, err := deployedCampaigns()
	if err != nil {
		return workflows.BroadcastInput{}, nil, err
	}
	c, err := pickCampaign(reg, b.campaign)
	if err != nil {
		return workflows.BroadcastInput{}, nil, err
	}
	if _, ok := c.Templates[b.template]; !ok {
		ids := make([]string, 0, len(c.Templates))
		for id := range c.Templates {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return workflows.BroadcastInput{}, nil, usagef("--template %q: campaign %s has no such template%s; its templates: %s",
			b.template, c.Key(), campaign.Suggest(b.template, ids), strings.Join(ids, ", "))
	}
	if _, err := c.Render(b.template, campaign.SampleTemplateData(c)); err != nil {
		return workflows.BroadcastInput{}, nil, fmt.Errorf("template %s does not render: %w", b.template, err)
	}
	in := workflows.BroadcastInput{
		BroadcastID: id, CampaignID: c.ID, Template: b.template, Segment: seg,
		RatePerSecond: b.rate, PageSize: b.pageSize, RespectQuietHours: b.respectQuietHours,
	}
	if strings.Contains(b.campaign, "@") {
		in.CampaignVersion = c.Version
	}
	if err := in.Validate(); err != nil {
		var ie *workflows.BroadcastInputError
		if errors.As(err, &ie) {
			name := flagFor(ie.Field, stagePrefix)
			if ie.Field == "broadcast_id" {
				name = idName
			}
			return workflows.BroadcastInput{}, nil, usagef("%s: %s", name, ie.Problem)
		}
		return workflows.BroadcastInput{}, nil, &usageError{err}
	}
	return in, c, nil
}

// flagFor names the flag behind an input field.
func flagFor(field, stagePrefix string) string {
	switch {
	case strings.HasPrefix(field, "segment.stages"):
		return "--" + stagePrefix + "stage"
	case strings.HasPrefix(field, "segment.lead_sources"):
		return "--" + stagePrefix + "lead-source"
	case strings.HasPrefix(field, "segment.customer_id_prefix"):
		return "--" + stagePrefix + "id-prefix"
	case strings.HasPrefix(field, "segment.tags"):
		return "--" + stagePrefix + "tag"
	case field == "rate_per_second":
		return "--rate"
	case field == "page_size":
		return "--page-size"
	}
	return field
}

func describeInput(in workflows.BroadcastInput) string {
	version := in.CampaignVersion
	if version == "" {
		version = "latest version when it runs"
	}
	var seg []string
	if len(in.Segment.Stages) > 0 {
		seg = append(seg, "stage "+strings.Join(in.Segment.Stages, "/"))
	}
	if in.Segment.MinScore != nil {
		seg = append(seg, fmt.Sprintf("score ≥ %d", *in.Segment.MinScore))
	}
	if len(in.Segment.LeadSources) > 0 {
		seg = append(seg, "lead source "+strings.Join(in.Segment.LeadSources, "/"))
	}
	if in.Segment.CustomerIDPrefix != "" {
		seg = append(seg, fmt.Sprintf("id starting %q", in.Segment.CustomerIDPrefix))
	}
	switch tags := in.Segment.Tags; len(tags) {
	case 0:
	case 1:
		seg = append(seg, "tag "+tags[0])
	default:
		seg = append(seg, "tags "+strings.Join(tags, " and "))
	}
	who := "every contact"
	if len(seg) > 0 {
		who = "contacts with " + strings.Join(seg, ", ")
	}
	rate := "unthrottled"
	if in.RatePerSecond > 0 {
		rate = fmt.Sprintf("at most %d/s", in.RatePerSecond)
	}
	quiet := ""
	if in.RespectQuietHours {
		quiet = ", deferring recipients in quiet hours"
	}
	return fmt.Sprintf("template %s of %s (%s) to %s with marketing consent, %s%s", in.Template, in.CampaignID, version, who, rate, quiet)
}
