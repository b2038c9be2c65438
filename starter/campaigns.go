package main

import (
	"fmt"
	"os"
	"reflect"
	"sort"
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

// diffCampaigns lists what changed from old to new, one line per field
// ("scoring.threshold: 60 → 55", "added nurture.steps[webinar]", "changed
// templates.welcome.subject"); versions, descriptions and sources aside.
func diffCampaigns(old, new *campaign.Campaign) []string {
	a, b := map[string]string{}, map[string]string{}
	flatten(reflect.ValueOf(old).Elem(), "", a)
	flatten(reflect.ValueOf(new).Elem(), "", b)
	for _, m := range []map[string]string{a, b} {
		delete(m, "version")
		delete(m, "description")
	}
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	var out []string
	var gone string // an added or removed element: skip what is under it
	for _, p := range sorted {
		if gone != "" && (strings.HasPrefix(p, gone+".") || strings.HasPrefix(p, gone+"[")) {
			continue
		}
		x, inA := a[p]
		y, inB := b[p]
		switch {
		case inA && !inB:
			out = append(out, "removed "+p)
			gone = p
		case !inA && inB:
			out = append(out, "added "+p)
			gone = p
		case x != y && x != elementMarker:
			if len(x) > 50 || len(y) > 50 || strings.ContainsAny(x+y, "\n") {
				out = append(out, "changed "+p)
			} else {
				out = append(out, fmt.Sprintf("%s: %s → %s", p, x, y))
			}
		}
	}
	return out
}

// elementMarker marks a map entry or list element (so additions and
// removals show once, not per field).
const elementMarker = "\x00element"

func flatten(v reflect.Value, path string, out map[string]string) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	if s, ok := v.Interface().(fmt.Stringer); ok && (v.Type() == reflect.TypeFor[campaign.Duration]() || v.Type() == reflect.TypeFor[campaign.ClockTime]()) {
		out[path] = s.String()
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			out[path] = "(none)"
			return
		}
		flatten(v.Elem(), path, out)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			flatten(v.Field(i), join(name), out)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		if len(keys) == 0 {
			out[path] = "(none)"
		}
		for _, k := range keys {
			p := join(k.String())
			out[p] = elementMarker
			flatten(v.MapIndex(k), p, out)
		}
	case reflect.Slice:
		if v.Len() > 0 && v.Type().Elem().Kind() == reflect.Struct {
			if _, ok := v.Type().Elem().FieldByName("ID"); ok {
				for i := range v.Len() {
					e := v.Index(i)
					p := fmt.Sprintf("%s[%s]", path, e.FieldByName("ID").String())
					out[p] = elementMarker
					flatten(e, p, out)
					out[p+".position"] = fmt.Sprint(i + 1)
				}
				return
			}
		}
		out[path] = fmt.Sprintf("%v", v.Interface())
	default:
		out[path] = fmt.Sprintf("%v", v.Interface())
	}
}
