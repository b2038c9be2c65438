package report

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acme/lifecycle/campaign"
)

// WriteText writes the report as the CLI prints it and the weekly email
// carries it: stages, conversions and times in stage with their targets
// (and the previous period), then the steps below target.
func WriteText(w io.Writer, r Funnel) error {
	var b strings.Builder
	writeText(&b, r)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeText renders r into b (whose writes cannot fail).
func writeText(w *strings.Builder, r Funnel) {
	f := r.Current
	scope := "all customers"
	if !f.Since.IsZero() {
		scope = "customers whose journey started since " + f.Since.Format(time.DateOnly)
	}
	if !f.Until.IsZero() {
		scope += " and before " + f.Until.Format(time.DateOnly)
	}
	if f.CampaignID != "" {
		scope += " on campaign " + f.CampaignID
	}
	if f.Tag != "" {
		scope += " tagged " + f.Tag
	}
	printf(w, "Funnel of %s: %d customers\n", scope, f.Customers)
	if r.Previous != nil {
		p := r.Previous
		printf(w, "Previous period: %s to %s, %d customers\n", p.Since.Format(time.DateOnly), p.Until.Format(time.DateOnly), p.Customers)
	}
	w.WriteString("\n")
	if f.Customers == 0 {
		printLine(w, "No customers match: no journey has recorded a stage yet for this selection.")
		return
	}
	var rows [][]string
	for _, st := range f.Stages {
		rows = append(rows, []string{st.Stage, fmt.Sprint(st.Customers), fmt.Sprintf("%.1f%%", 100*float64(st.Customers)/float64(f.Customers))})
	}
	table(w, []string{"stage", "customers", "share"}, rows)

	header := []string{"conversion", "entered", "then", "rate"}
	if r.Previous != nil {
		header = append(header, "previous")
	}
	header = append(header, "target")
	rows = rows[:0]
	for _, c := range r.Conversions {
		rate := "-"
		if c.Entered > 0 {
			rate = fmt.Sprintf("%.1f%%", 100*c.Rate)
		}
		row := []string{c.Name(), fmt.Sprint(c.Entered), fmt.Sprint(c.Converted), rate}
		if r.Previous != nil {
			prev := "-"
			if c.PreviousRate != nil {
				prev = fmt.Sprintf("%.1f%%", 100**c.PreviousRate)
			}
			row = append(row, prev)
		}
		row = append(row, targetCell(c.Target, c.Below, fmt.Sprintf("≥ %.0f%%", 100*targetRate(c.Target))))
		rows = append(rows, row)
	}
	w.WriteString("\n")
	table(w, header, rows)

	rows = rows[:0]
	header = []string{"time in stage", "stays", "median"}
	if r.Previous != nil {
		header = append(header, "previous")
	}
	header = append(header, "target")
	for _, st := range r.TimeInStage {
		row := []string{st.Stage, fmt.Sprint(st.Stays), humanDuration(st.Median)}
		if r.Previous != nil {
			prev := "-"
			if st.PreviousMedian != nil {
				prev = humanDuration(*st.PreviousMedian)
			}
			row = append(row, prev)
		}
		limit := ""
		if st.Target != nil {
			limit = "≤ " + campaign.FormatDuration(st.Target.MaxTimeInStage.D())
		}
		row = append(row, targetCell(st.Target, st.Above, limit))
		rows = append(rows, row)
	}
	w.WriteString("\n")
	if len(rows) == 0 {
		printLine(w, "time in stage: no completed stays yet")
	} else {
		table(w, header, rows)
	}

	w.WriteString("\n")
	switch {
	case len(r.Targets) == 0:
		printLine(w, "No stage targets: set them in the campaign file (targets:, docs/journey.md).")
	case len(r.BelowTarget) == 0:
		printLine(w, "Every step with data meets its target.")
	default:
		printf(w, "Below target (%d):\n", len(r.BelowTarget))
		for _, b := range r.BelowTarget {
			printf(w, "  %s\n", b)
		}
	}
	for _, u := range r.Unmatched {
		printf(w, "Target %s matches no step of this report.\n", u)
	}
}

// printf and printLine write to a strings.Builder, which never fails.
func printf(b *strings.Builder, format string, args ...any) { _, _ = fmt.Fprintf(b, format, args...) }

func printLine(b *strings.Builder, args ...any) { _, _ = fmt.Fprintln(b, args...) }

// targetCell is a target column: empty without a target, flagged when
// missed.
func targetCell(t *campaign.Target, missed bool, text string) string {
	switch {
	case t == nil:
		return ""
	case missed:
		return text + " MISSED"
	}
	return text
}

func targetRate(t *campaign.Target) float64 {
	if t == nil {
		return 0
	}
	return t.MinConversion
}

// table prints rows with the first column left-aligned and the others
// right-aligned.
func table(w *strings.Builder, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString("  " + c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		printLine(w, b.String())
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
}

// humanDuration rounds d to what a reader needs.
func humanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		d = d.Round(time.Hour)
	case d >= time.Minute:
		d = d.Round(time.Minute)
	default:
		d = d.Round(time.Second)
	}
	if d == 0 {
		return "0"
	}
	return campaign.FormatDuration(d)
}
