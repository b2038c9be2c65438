package campaign

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// ParseDuration parses a campaign duration: one or more decimal numbers,
// each with a unit, e.g. "90m", "36h", "3d", "2w", "1d12h", "1.5h". Units
// are w (168h), d (24h), h, m, s, ms, us (or µs) and ns; a bare "0" is zero.
// Days and weeks are fixed lengths of elapsed time, not calendar days. A
// leading "-" gives a negative duration (which validation then rejects where
// it makes no sense).
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration (write e.g. 3d, 36h or 90m)")
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("invalid duration %q", orig)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num := s[:i]
		if num == "" || num == "." {
			return 0, fmt.Errorf("invalid duration %q: expected a number at %q", orig, s)
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit := s[i:j]
		s = s[j:]
		if unit == "" {
			return 0, fmt.Errorf("invalid duration %q: missing unit after %s (use w, d, h, m or s, e.g. %sd)", orig, num, num)
		}
		var part time.Duration
		var err error
		switch unit {
		case "d", "w":
			part, err = time.ParseDuration(num + "h")
			if err == nil {
				mult := time.Duration(24)
				if unit == "w" {
					mult = 168
				}
				if part > math.MaxInt64/mult {
					err = errors.New("too large")
				}
				part *= mult
			}
		case "h", "m", "s", "ms", "us", "µs", "ns":
			part, err = time.ParseDuration(num + unit)
		default:
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q (use w, d, h, m or s)", orig, unit)
		}
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: %s%s: %v", orig, num, unit, trimTimeErr(err))
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("invalid duration %q: too large", orig)
		}
		total += part
	}
	if neg {
		total = -total
	}
	return total, nil
}

// trimTimeErr removes time.ParseDuration's own quoting of the input, which
// would repeat what our message already says.
func trimTimeErr(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "time: "); i == 0 {
		msg = msg[len("time: "):]
	}
	if i := strings.Index(msg, " \""); i > 0 {
		msg = msg[:i]
	}
	return msg
}

// FormatDuration writes d the way campaign files do, in the largest unit
// that divides it: "3d", "36h", "90m", "45s"; "0" for zero. Durations that
// are not whole seconds use time.Duration's notation ("1.5s"). The result
// always parses back to d with ParseDuration.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d < 0 {
		if d == math.MinInt64 {
			return d.String()
		}
		return "-" + FormatDuration(-d)
	}
	switch {
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// String formats the duration like FormatDuration ("3d", "36h").
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// UnmarshalYAML reads a duration written like "3d" (goccy/go-yaml's
// NodeUnmarshaler, so errors carry the line of the bad value).
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	s, err := scalarText(node, `a duration like "3d", "36h" or "90m"`)
	if err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return nodeError(node, err.Error())
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as FormatDuration does.
func (d Duration) MarshalYAML() (any, error) { return FormatDuration(time.Duration(d)), nil }

// ParseClockTime parses a wall-clock time "HH:MM" (00:00–23:59; a one-digit
// hour such as "8:00" is accepted too).
func ParseClockTime(s string) (ClockTime, error) {
	t := strings.TrimSpace(s)
	h, m, ok := strings.Cut(t, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !allDigits(h) || !allDigits(m) {
		return ClockTime{}, fmt.Errorf("invalid time of day %q: want HH:MM, e.g. 21:00", s)
	}
	hour, _ := strconv.Atoi(h)
	minute, _ := strconv.Atoi(m)
	c := ClockTime{Hour: hour, Minute: minute}
	if !c.Valid() {
		return ClockTime{}, fmt.Errorf("invalid time of day %q: must be between 00:00 and 23:59", s)
	}
	return c, nil
}

// Valid reports whether the time lies within 00:00–23:59.
func (c ClockTime) Valid() bool {
	return c.Hour >= 0 && c.Hour <= 23 && c.Minute >= 0 && c.Minute <= 59
}

// String formats the time as "HH:MM", e.g. "21:00".
func (c ClockTime) String() string { return fmt.Sprintf("%02d:%02d", c.Hour, c.Minute) }

// minutes is the time as minutes after midnight.
func (c ClockTime) minutes() int { return c.Hour*60 + c.Minute }

// UnmarshalYAML reads "HH:MM".
func (c *ClockTime) UnmarshalYAML(node ast.Node) error {
	s, err := scalarText(node, `a time of day like "21:00"`)
	if err != nil {
		return err
	}
	v, err := ParseClockTime(s)
	if err != nil {
		return nodeError(node, err.Error())
	}
	*c = v
	return nil
}

// MarshalYAML writes "HH:MM".
func (c ClockTime) MarshalYAML() (any, error) { return c.String(), nil }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// scalarText returns the source text of a scalar node (a string, or a
// number such as 0); anything else is an error naming what was expected.
func scalarText(node ast.Node, want string) (string, error) {
	if tn, ok := node.(*ast.TagNode); ok {
		node = tn.Value
	}
	switch n := node.(type) {
	case *ast.StringNode:
		return n.Value, nil
	case *ast.IntegerNode, *ast.FloatNode:
		return n.GetToken().Value, nil
	case nil:
		return "", errors.New("expected " + want)
	}
	return "", nodeError(node, fmt.Sprintf("expected %s, got %s", want, nodeTypeName(node.Type())))
}

// nodeError is a YAML error at node, so Parse can name its line and path.
func nodeError(node ast.Node, msg string) error {
	return &yaml.SyntaxError{Message: msg, Token: node.GetToken()}
}
