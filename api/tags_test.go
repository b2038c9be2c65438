package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/workflows"
)

func TestTagsGoToTheJourneyAsAnEvent(t *testing.T) {
	h := newHarness(t)
	rec := h.postJSON("/v1/customers/c-1/tags", `{"add":["vip","webinar-2026"],"remove":["trial-user"]}`)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	res := decode[TagsResponse](t, rec)
	assert.Equal(t, "journey", res.AppliedBy)

	sent := h.temporal.sent()
	require.Len(t, sent, 1)
	assert.Equal(t, workflows.JourneyID("c-1"), sent[0].WorkflowID)
	events, ok := sent[0].Arg.([]workflows.Event)
	if !ok {
		ev, isOne := sent[0].Arg.(workflows.Event)
		require.True(t, isOne, "signal argument %T", sent[0].Arg)
		events = []workflows.Event{ev}
	}
	require.Len(t, events, 1)
	assert.Equal(t, "tags_changed", events[0].Type)
	assert.Equal(t, res.EventID, events[0].ID)
	assert.Equal(t, []string{"vip", "webinar-2026"}, events[0].Properties["tags"])
	assert.Equal(t, []string{"trial-user"}, events[0].Properties["remove_tags"])
}

func TestTagsRefuseBadInput(t *testing.T) {
	h := newHarness(t)
	for name, tc := range map[string]struct{ body, field string }{
		"upper case":   {`{"add":["ok","Not-OK"]}`, "add[1]"},
		"nothing":      {`{}`, "add"},
		"unknown":      {`{"tags":["vip"]}`, "tags"},
		"not a string": {`{"remove":[1]}`, "remove"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := h.postJSON("/v1/customers/c-1/tags", tc.body)
			require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
			assert.Equal(t, tc.field, decode[ErrorResponse](t, rec).Field, rec.Body.String())
		})
	}
	assert.Empty(t, h.temporal.sent())
}
