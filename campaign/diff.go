package campaign

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Diff lists what changed from one version of a campaign to another, one
// line per field, sorted by path ("scoring.threshold: 60 → 55", "added
// nurture.steps[webinar]", "changed templates.welcome.subject" for long or
// multi-line values); versions, descriptions and sources aside. Steps and
// holidays are named by their id, so inserting one shows as an addition
// and changed positions, not as every later element changed. `starter
// launch campaign` shows it before a deploy.
func Diff(from, to *Campaign) []string {
	a, b := map[string]string{}, map[string]string{}
	flatten(reflect.ValueOf(from).Elem(), "", a)
	flatten(reflect.ValueOf(to).Elem(), "", b)
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
	if s, ok := v.Interface().(fmt.Stringer); ok && (v.Type() == reflect.TypeFor[Duration]() || v.Type() == reflect.TypeFor[ClockTime]()) {
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
