package e2e

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/acme/lifecycle/privacy"
)

// payloadsOf collects every Payload in the event, wherever it sits.
func payloadsOf(m protoreflect.Message, out *[]*commonpb.Payload) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		*out = append(*out, p)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				payloadsOf(v.List().Get(i).Message(), out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				payloadsOf(mv.Message(), out)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			payloadsOf(v.Message(), out)
		}
		return true
	})
}

// decryptHistory replaces every encrypted payload of the events with its
// plaintext, in place: recorded histories are replayed with the default
// data converter (workflows/replay_test.go), without the data keys.
func decryptHistory(t *testing.T, codec *privacy.Codec, events []*historypb.HistoryEvent) {
	t.Helper()
	for _, ev := range events {
		var ps []*commonpb.Payload
		payloadsOf(ev.ProtoReflect(), &ps)
		for _, p := range ps {
			out, err := codec.Decode([]*commonpb.Payload{p})
			require.NoError(t, err, "decrypt event %d of the history", ev.GetEventId())
			plain := out[0]
			if plain == p {
				continue // not encrypted: passed through as it is
			}
			proto.Reset(p)
			proto.Merge(p, plain)
		}
	}
}
