package workflows

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acme/lifecycle/activities"
	"github.com/acme/lifecycle/customer"
)

// The tag rules of the journey (rules.go): an event's tags, the campaign's
// tag rules, and the tags advocacy sets.

// tags applies an event's tag changes: its "tags" and "remove_tags"
// properties, then the campaign's tag rules for its type. A change that
// changes nothing writes nothing; a tag list that breaks the rules (the API
// refuses those, but a signal may bypass it) is noted and skipped.
func (r *rules) tags(e Event) {
	s := r.s
	if e.Type == customer.EventErase {
		return
	}
	var add, remove []string
	if err := customer.CheckTagProperties("properties", e.Properties); err != nil {
		s.note(r.now, "tags", fmt.Sprintf("event %s: tags ignored: %v", e.ID, err))
	} else {
		// Checked: both are lists of valid tags (or absent).
		add, _ = customer.TagsProperty(e.Properties, customer.PropertyTags)
		remove, _ = customer.TagsProperty(e.Properties, customer.PropertyRemoveTags)
	}
	add = slices.Concat(add, r.c.TagsFor(e.Type)) // a new slice: the event keeps its own
	next := changedTags(s.Tags, add, remove)
	if slices.Equal(next, s.Tags) || (len(next) == 0 && len(s.Tags) == 0) {
		return
	}
	if len(next) > customer.MaxTagsPerContact {
		s.note(r.now, "tags", fmt.Sprintf("event %s: tags ignored: a contact has at most %d tags", e.ID, customer.MaxTagsPerContact))
		return
	}
	s.Tags = next
	r.writeTags(add, remove)
	s.note(r.now, "tags", "tags: "+strings.Join(next, ", "))
}

// changedTags is (tags ∪ add) \ remove, sorted and distinct.
func changedTags(tags, add, remove []string) []string {
	out := make([]string, 0, len(tags)+len(add))
	for _, t := range slices.Concat(tags, add) {
		if !slices.Contains(remove, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// writeTags writes a tag change to the CRM in changes of at most
// customer.MaxTagsPerChange tags each (an event's own tags and the
// campaign's rules together may be more). Before the signup there is no
// CRM contact to tag: the signup writes the journey's tags after the
// contact (see signup).
func (r *rules) writeTags(add, remove []string) {
	if !r.s.HasSignup {
		return
	}
	for len(add) > 0 || len(remove) > 0 {
		n, m := min(len(add), customer.MaxTagsPerChange), min(len(remove), customer.MaxTagsPerChange)
		r.write(activities.CRMWrite{Tags: &activities.TagsInput{CustomerID: r.s.CustomerID, Add: add[:n], Remove: remove[:m]}})
		add, remove = add[n:], remove[m:]
	}
}

// changeTags adds and removes tags (the advocacy tags), writing only what
// changes.
func (r *rules) changeTags(add, remove []string) {
	s := r.s
	next := changedTags(s.Tags, add, remove)
	if slices.Equal(next, s.Tags) || len(next) > customer.MaxTagsPerContact {
		return
	}
	var added, removed []string
	for _, t := range add {
		if !slices.Contains(s.Tags, t) && slices.Contains(next, t) {
			added = append(added, t)
		}
	}
	for _, t := range remove {
		if slices.Contains(s.Tags, t) {
			removed = append(removed, t)
		}
	}
	s.Tags = next
	r.writeTags(added, removed)
}
