package privacy

import (
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
)

// BenchmarkCodecEncodeDecode encrypts and decrypts a 1 KiB JSON payload of
// a journey whose key is cached: the cost the codec adds to every payload.
func BenchmarkCodecEncodeDecode(b *testing.B) {
	codec := NewCodec(NewKeys(newPool(b), Keyring{Current: newKEK(b)}))
	journey := forJourney(codec, "c1")
	p := jsonPayload(b, map[string]string{"email": "pat@example.com", "notes": strings.Repeat("x", 990)})
	if n := len(p.GetData()); n < 1000 || n > 1100 {
		b.Fatalf("payload is %d bytes, want about 1 KiB", n)
	}
	in := []*commonpb.Payload{p}
	if _, err := journey.Encode(in); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p.GetData())))
	b.ReportAllocs()
	for b.Loop() {
		enc, err := journey.Encode(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := codec.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
