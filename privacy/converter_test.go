package privacy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

func TestFailureConverterEncryptsMessagesWithTheJourneysKey(t *testing.T) {
	keys := NewKeys(newPool(t), Keyring{Current: newKEK(t)})
	fc := FailureConverter(DataConverter(NewCodec(keys)))
	journey := converter.WithFailureConverterSerializationContext(fc,
		converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: "journey/c1"})

	cause := errors.New("no contact pat@example.com")
	failure := journey.ErrorToFailure(fmt.Errorf("send welcome to pat@example.com: %w", cause))
	raw, err := proto.Marshal(failure)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "pat@example.com")
	require.Equal(t, "Encoded failure", failure.GetMessage())
	require.Equal(t, "c1", string(failure.GetEncodedAttributes().GetMetadata()["encryption-subject"]))
	require.Equal(t, "c1", string(failure.GetCause().GetEncodedAttributes().GetMetadata()["encryption-subject"]))

	back := journey.FailureToError(proto.Clone(failure).(*failurepb.Failure))
	require.ErrorContains(t, back, "send welcome to pat@example.com")
	require.ErrorContains(t, errors.Unwrap(back), "no contact pat@example.com")
	// Decoding needs no context either.
	require.ErrorContains(t, fc.FailureToError(proto.Clone(failure).(*failurepb.Failure)), "pat@example.com")

	// After the erasure the message is gone for good.
	_, err = keys.Shred(t.Context(), "c1")
	require.NoError(t, err)
	gone := fc.FailureToError(proto.Clone(failure).(*failurepb.Failure))
	require.NotContains(t, gone.Error(), "pat@example.com")
}

func TestFailureConverterWithoutContextUsesTheSystemKey(t *testing.T) {
	fc := FailureConverter(DataConverter(NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))))
	failure := fc.ErrorToFailure(errors.New("broadcast to pat@example.com failed"))
	require.Equal(t, SystemSubject, string(failure.GetEncodedAttributes().GetMetadata()["encryption-subject"]))
	require.ErrorContains(t, fc.FailureToError(failure), "pat@example.com")
}

func TestDataConverterEncryptsWithTheContextsSubject(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	dc := converter.WithDataConverterSerializationContext(DataConverter(codec),
		converter.ActivitySerializationContext{WorkflowID: "journey/c9", ActivityType: "SendEmail"})
	p, err := dc.ToPayload(profile{"c9", "pat@example.com"})
	require.NoError(t, err)
	require.Equal(t, "c9", string(p.GetMetadata()["encryption-subject"]))
	require.NotContains(t, string(p.GetData()), "pat@example.com")

	var got profile
	require.NoError(t, DataConverter(codec).FromPayload(p, &got))
	require.Equal(t, profile{"c9", "pat@example.com"}, got)
}

func TestProtectSetsBothConverters(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	var opts client.Options
	Protect(&opts, codec)
	require.NotNil(t, opts.DataConverter)
	require.Implements(t, (*converter.FailureConverterWithSerializationContext)(nil), opts.FailureConverter)
	p, err := opts.DataConverter.ToPayload("x")
	require.NoError(t, err)
	require.Equal(t, "binary/encrypted", string(p.GetMetadata()["encoding"]))
	f := opts.FailureConverter.ErrorToFailure(errors.New("secret"))
	require.Equal(t, "Encoded failure", f.GetMessage())
}
