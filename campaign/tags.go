package campaign

import (
	"errors"
	"fmt"

	"github.com/acme/lifecycle/customer"
)

// TagRule adds tags to the contact when an event of a type arrives (any
// stage): `{event: webinar_attended, add: [webinar-2026]}`.
type TagRule struct {
	Event string   `yaml:"event" json:"event"`
	Add   []string `yaml:"add" json:"add"`
}

// TagsFor returns the tags the campaign's rules add for an event type, in
// rule order (nil when none).
func (c *Campaign) TagsFor(eventType string) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, r := range c.Tags {
		if r.Event == eventType {
			out = append(out, r.Add...)
		}
	}
	return out
}

func (v *validator) tagRules() {
	for i, r := range v.c.Tags {
		path := fmt.Sprintf("tags[%d]", i)
		if !customer.IsKnownEvent(r.Event) {
			v.add(path+".event", "unknown event type %q%s", r.Event, Suggest(r.Event, customer.KnownEventTypes))
		}
		if len(r.Add) == 0 {
			v.add(path+".add", "at least one tag is required")
		}
		var fe *customer.FieldError
		if err := customer.CheckTags(path+".add", r.Add); errors.As(err, &fe) {
			v.add(fe.Field, "%s", fe.Problem)
		}
	}
}
