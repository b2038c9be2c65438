package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	// beginPrefix finds the begin marker whatever the rest of its line
	// says, so that rewording it (it names the command's path) never loses
	// the hand-written page.
	beginPrefix = "<!-- BEGIN GENERATED"
	beginMarker = beginPrefix + " by `make bench` (tools/bench/cmd/lifecycle-bench): edits between these markers are overwritten -->"
	endMarker   = "<!-- END GENERATED -->"
)

// writeReport replaces the generated part of the report file and keeps
// everything outside the markers (the hand-written analysis).
func writeReport(file string, r *Results) error {
	gen := render(r)
	old, err := os.ReadFile(file)
	var out string
	switch {
	case err == nil:
		s := string(old)
		i, j := strings.Index(s, beginPrefix), strings.Index(s, endMarker)
		if i < 0 || j < i {
			// Replacing the whole file would drop its hand-written part.
			return fmt.Errorf("%s: no %q … %q markers to write between", file, beginPrefix, endMarker)
		}
		out = s[:i] + gen + s[j+len(endMarker):]
	case errors.Is(err, os.ErrNotExist):
		out = "# Benchmarks\n\n`make bench` measures the product on its own local stack and rewrites the generated part of this page.\n\n" +
			gen + "\n\n## Analysis\n\n(hand-written; kept by `make bench`)\n\n## Next steps\n\n(hand-written; kept by `make bench`)\n"
	default:
		return err
	}
	return os.WriteFile(file, []byte(out), 0o644)
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func render(r *Results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	w("%s\n\n", beginMarker)
	w("Run %s → %s (%s), command `%s`.\n\n", r.Started.Format("2006-01-02 15:04:05 MST"), r.Finished.Format("15:04:05"),
		r.Finished.Sub(r.Started).Round(time.Second), r.Config.Command)
	w("### Machine and versions\n\n| | |\n|---|---|\n")
	w("| cores | %d (%s) |\n| memory | %s (/proc/meminfo MemTotal) |\n| kernel | %s |\n", m.Cores, m.CPU, m.MemTotal, m.Kernel)
	w("| Go | %s |\n| Temporal CLI (dev server, SQLite file, `journal_mode=wal`, `synchronous=normal`) | %s |\n| Mailpit | %s |\n| PostgreSQL | %s |\n",
		m.Go, m.Temporal, m.Mailpit, m.Postgres)
	w("| load at start | `%s` |\n\n", m.UptimeAtStart)
	w("Other engineers run test suites on this machine at the same time: every figure carries the 1-minute load average at its start → end (2 cores: 2.0 = the machine is full before we add anything).\n\n")

	w("### Figures\n\n| phase | figure | value | p50 | p99 | fraction of its limit | load | n | notes |\n|---|---|---:|---:|---:|---|---|---:|---|\n")
	for _, f := range r.Figures {
		frac := "–"
		if f.Limit != "" {
			if f.Fraction > 0 {
				frac = fmt.Sprintf("**%.2f×** %s (%s)", f.Fraction, f.Limit, num(r.Limits[f.Limit]))
			} else {
				frac = f.Limit + " not measured"
			}
		}
		w("| %s | %s | **%s** %s | %s | %s | %s | %s | %d | %s |\n", f.Phase, f.Name, num(f.Value), f.Unit, dur(f.P50), dur(f.P99), frac, f.Load, f.N,
			strings.ReplaceAll(f.Note, "|", "\\|"))
	}
	w("\n")
	w("### Where the CPU went during each measurement\n\nCPU seconds from `/proc/<pid>/stat` (utime + stime) over the measurement's wall time; \"whole machine\" includes the other engineers' test suites.\n\n| phase | figure | wall | CPU |\n|---|---|---:|---|\n")
	for _, f := range r.Figures {
		w("| %s | %s | %s | %s |\n", f.Phase, f.Name, dur(f.Elapsed), f.CPU)
	}
	w("\n")
	if c := r.Cost; c != nil {
		w("### Cost of a typical journey (Temporal Cloud actions, from the histories)\n\n")
		w("%d journey(s) at TIME_SCALE %g (one journey day = %s real): signup (cold lead) → 20 engagement events in nurture, the last a demo request that crosses the threshold → sales handoff → accepted → deal won → onboarding (31 d) → a year in `active` with a login every 20 days, holidays and asks. %.0f journey days in all; %d signals sent per journey; final stage `%s`. Every run's history read with GetWorkflowHistory (following continue-as-new); sizes are the serialized protobuf History. Took %s, load %s.\n\n",
			c.Journeys, c.Scale, time.Duration(float64(24*time.Hour)/c.Scale).Round(time.Millisecond), c.JourneyDays, c.SignalsSent/max(c.Journeys, 1), c.FinalStage, c.Elapsed.Round(time.Second), c.Load)
		w("| action (Temporal Cloud definition) | per journey |\n|---|---:|\n")
		for _, k := range sortedKeys(c.Actions) {
			w("| %s | %.1f |\n", k, c.Actions[k])
		}
		w("| **total over %.0f journey days** | **%.0f** |\n| **per customer-year** (× 365 / %.0f) | **%.0f** (target < 150) |\n", c.JourneyDays, c.TotalActions, c.JourneyDays, c.ActionsPerYear)
		w("| queries (not in histories; the harness issued %d for the whole cost phase, a UI user would add theirs) | – |\n", c.HarnessQueries)
		w("| not counted: upserts of `TemporalChangeVersion` alone (workflow.GetVersion; exempt in Temporal Cloud) | %.1f |\n\n", c.VersionUpserts)
		w("History: %.1f runs, %.0f events, %.1f KiB per journey (%.1f KiB per customer-year); **largest single run: %d events, %.1f KiB** (target ≤ 2,000 events).\n\n",
			c.Runs, c.HistoryEvents, c.HistoryBytes/1024, c.BytesPerYear/1024, c.LargestRunEvents, float64(c.LargestRunBytes)/1024)
		w("<details><summary>history event types per journey</summary>\n\n| event type | count |\n|---|---:|\n")
		for _, k := range sortedKeys(c.EventTypes) {
			w("| %s | %.1f |\n", k, c.EventTypes[k])
		}
		w("\n</details>\n\nActivities scheduled per journey, by type: ")
		var acts []string
		for _, k := range sortedKeys(c.ActivityTypes) {
			acts = append(acts, fmt.Sprintf("%s %.1f", k, c.ActivityTypes[k]))
		}
		w("%s.\n\nEmails the journey sent (ledger, all journeys of the phase): ", strings.Join(acts, ", "))
		var parts []string
		for _, k := range sortedKeys(c.Emails) {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, c.Emails[k]))
		}
		w("%s.\n\n", strings.Join(parts, ", "))
	}
	if r.Profile != "" {
		w("### CPU profile of the signup run (whole harness process: API, in-process worker, harness clients)\n\n```text\n%s```\n\n", r.Profile)
	}
	if len(r.Notes) > 0 {
		w("### Notes from the run\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	w("### Reproduce\n\n```sh\nmake bench                      # stack on ports 7263/8263 (Temporal) and 1046/8046 (Mailpit), data in .data/bench, then down\n")
	w("BENCH_FLAGS='-phases signups -signups 1000' make bench   # one phase, bigger\ngo run -C tools/bench ./cmd/lifecycle-bench -h            # every flag (stack already up: tools/bench/run.sh keep)\n```\n\n")
	w("| phase | command |\n|---|---|\n")
	seen := map[string]bool{}
	for _, f := range r.Figures {
		if f.Repro != "" && !seen[f.Repro] {
			seen[f.Repro] = true
			w("| %s | `BENCH_FLAGS='%s' make bench` |\n", f.Phase, strings.TrimPrefix(f.Repro, "lifecycle-bench "))
		}
	}
	w("\nRaw results of every run: `%s`; profiles: `%s`.\n\n%s", filepath.Join(rel(r.Config.DataDir), "results", "*.json"), rel(r.Config.ProfileDir), endMarker)
	return b.String()
}
