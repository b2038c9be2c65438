package customer

import (
	"regexp"
	"strconv"
)

// Tags label a contact with what marketing selects on: interests, product
// lines, events attended ("webinar-2026", "product:analytics"). A contact
// has a set of them (no order, no duplicates), set by the API, by an
// event's "tags" property, or by the campaign's tag rules.

// Tag limits.
const (
	MaxTag            = 64
	MaxTagsPerContact = 100
	MaxTagsPerChange  = 20
)

var tagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,63}$`)

const tagChars = "lower-case letters, digits and . _ : - (starting with a letter or digit)"

// CheckTag accepts a tag: 1 to MaxTag characters of lower-case letters,
// digits and . _ : -, starting with a letter or digit. Lower case only, so
// that "Webinar-2026" and "webinar-2026" are not two tags.
func CheckTag(field, v string) error {
	if !tagPattern.MatchString(v) {
		return invalid(field, "%smust be 1-%d characters of %s", shown(v), MaxTag, tagChars)
	}
	return nil
}

// CheckTags accepts a change's list of tags: at most MaxTagsPerChange,
// each valid.
func CheckTags(field string, tags []string) error {
	if len(tags) > MaxTagsPerChange {
		return invalid(field, "has %d tags; at most %d per change", len(tags), MaxTagsPerChange)
	}
	for i, t := range tags {
		if err := CheckTag(fieldIndex(field, i), t); err != nil {
			return err
		}
	}
	return nil
}

func fieldIndex(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// TagsProperty reads a tag list from an event property: a JSON array of
// strings (or one string). ok is false when the property is there but is
// not such a list.
func TagsProperty(props map[string]any, name string) (tags []string, ok bool) {
	v, found := props[name]
	if !found {
		return nil, true
	}
	switch v := v.(type) {
	case string:
		return []string{v}, true
	case []string:
		return v, true
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, isString := e.(string)
			if !isString {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// CheckTagProperties checks the tag properties of an event (field is the
// properties' name, e.g. "properties").
func CheckTagProperties(field string, props map[string]any) error {
	for _, name := range []string{PropertyTags, PropertyRemoveTags} {
		tags, ok := TagsProperty(props, name)
		if !ok {
			return invalid(field+"."+name, "must be a list of tags (strings)")
		}
		if err := CheckTags(field+"."+name, tags); err != nil {
			return err
		}
	}
	return nil
}
