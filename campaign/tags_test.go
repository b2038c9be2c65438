package campaign

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTagRules(t *testing.T) {
	c := validBase(t)
	c.Tags = []TagRule{{Event: "webinar_attended", Add: []string{"webinar-2026"}}, {Event: "webinar_attended", Add: []string{"events"}}}
	require.NoError(t, c.Validate())
	assert.Equal(t, []string{"webinar-2026", "events"}, c.TagsFor("webinar_attended"))
	assert.Nil(t, c.TagsFor("login"))

	c.Tags = []TagRule{{Event: "webinar_atended", Add: []string{"Webinar"}}}
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tags[0].event: unknown event type "webinar_atended" (did you mean "webinar_attended"?)`)
	assert.Contains(t, err.Error(), "tags[0].add[0]")
}
