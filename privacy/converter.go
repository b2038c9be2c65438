package privacy

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// DataConverter is Temporal's default data converter with the codec applied
// to every payload it produces. Given a serialization context, the SDK
// passes it to the codec, which picks the workflow's subject.
func DataConverter(c *Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter is Temporal's default failure converter with
// EncodeCommonAttributes: a failure's message and stack trace, which often
// quote personal data ("no contact pat@example.com"), move into a payload
// encrypted by dc, and the failure itself says only "Encoded failure". Given
// a serialization context it converts with dc in that context, so a
// journey's failures are encrypted with its customer's key and go when the
// key is shredded.
//
// Like the SDK's own converter, ErrorToFailure panics when dc cannot encode
// (a shredded customer, or no database and no cached key): the SDK's worker
// recovers such panics.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return &failureConverter{
		DefaultFailureConverter: newDefaultFailureConverter(dc),
		dc:                      dc,
	}
}

// failureConverter adds the serialization context to the default converter.
type failureConverter struct {
	*temporal.DefaultFailureConverter
	dc converter.DataConverter
}

var _ converter.FailureConverterWithSerializationContext = (*failureConverter)(nil)

// WithSerializationContext returns the default failure converter over dc
// in the context sc.
func (f *failureConverter) WithSerializationContext(sc converter.SerializationContext) converter.FailureConverter {
	return newDefaultFailureConverter(converter.WithDataConverterSerializationContext(f.dc, sc))
}

func newDefaultFailureConverter(dc converter.DataConverter) *temporal.DefaultFailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// Protect makes a Temporal client (and the workers made from it) encrypt
// payloads and failures with c: it sets opts.DataConverter and
// opts.FailureConverter.
func Protect(opts *client.Options, c *Codec) {
	dc := DataConverter(c)
	opts.DataConverter = dc
	opts.FailureConverter = FailureConverter(dc)
}
