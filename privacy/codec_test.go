package privacy

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

func TestCodecRoundTripsAJourneysPayload(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	orig := jsonPayload(t, profile{CustomerID: "c1", Email: "pat@example.com"})

	enc := encodeOne(t, forJourney(codec, "c1"), orig)
	require.Equal(t, "binary/encrypted", string(enc.Metadata["encoding"]))
	require.Equal(t, "c1", string(enc.Metadata["encryption-subject"]))
	require.Equal(t, "AES256-GCM", string(enc.Metadata["encryption-cipher"]))
	require.Len(t, enc.Metadata, 3)
	require.NotContains(t, string(enc.Data), "pat@example.com")
	require.NotContains(t, string(enc.Data), "json/plain")

	// Decoding needs no context: the subject is in the payload.
	dec, err := decodeOne(codec, enc)
	require.NoError(t, err)
	require.True(t, proto.Equal(orig, dec), "decoded %v, want %v", dec, orig)
}

func TestEachCustomerHasItsOwnKey(t *testing.T) {
	pool := newPool(t)
	codec := NewCodec(NewKeys(pool, Keyring{Current: newKEK(t)}))
	a := encodeOne(t, forJourney(codec, "a"), jsonPayload(t, "a's data"))
	b := encodeOne(t, forJourney(codec, "b"), jsonPayload(t, "b's data"))
	_, err := decodeOne(codec, b)
	require.NoError(t, err)

	var keys int
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(DISTINCT wrapped_key) FROM payload_keys WHERE subject IN ('a', 'b')`).Scan(&keys))
	require.Equal(t, 2, keys)

	// a's ciphertext under b's name: b's key and b as additional data.
	moved := proto.Clone(a).(*commonpb.Payload)
	moved.Metadata["encryption-subject"] = []byte("b")
	_, err = decodeOne(codec, moved)
	require.ErrorContains(t, err, `decrypt payload of "b"`)
	require.ErrorContains(t, err, "authentication failed")
}

func TestCodecSubjectFollowsTheSerializationContext(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	for _, tc := range []struct {
		sc   converter.SerializationContext
		want string
	}{
		{nil, SystemSubject},
		{converter.WorkflowSerializationContext{WorkflowID: "journey/c7"}, "c7"},
		{converter.WorkflowSerializationContext{WorkflowID: "broadcast/launch"}, SystemSubject},
		{converter.ActivitySerializationContext{WorkflowID: "journey/c8", ActivityType: "SendEmail"}, "c8"},
		{converter.ActivitySerializationContext{}, SystemSubject},
		{converter.NexusSerializationContext{Operation: "op"}, SystemSubject},
	} {
		var pc converter.PayloadCodec = codec
		if tc.sc != nil {
			pc = codec.WithSerializationContext(tc.sc)
		}
		enc := encodeOne(t, pc, jsonPayload(t, 1))
		require.Equal(t, tc.want, string(enc.Metadata["encryption-subject"]), "context %#v", tc.sc)
	}
}

func TestCodecPassesThroughPlainPayloads(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	plain := jsonPayload(t, "written before encryption")
	out, err := codec.Decode([]*commonpb.Payload{plain, nil})
	require.NoError(t, err)
	require.Same(t, plain, out[0])
	require.Nil(t, out[1])
}

func TestCodecDoesNotEncryptTwice(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	orig := jsonPayload(t, "once")
	once := encodeOne(t, forJourney(codec, "c1"), orig)
	twice := encodeOne(t, forJourney(codec, "c2"), once)
	require.True(t, proto.Equal(once, twice))
	dec, err := decodeOne(codec, twice)
	require.NoError(t, err)
	require.True(t, proto.Equal(orig, dec))
}

func TestCodecEncryptsEveryPayloadOfACall(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	in := []*commonpb.Payload{jsonPayload(t, "one"), jsonPayload(t, "two"), jsonPayload(t, "one")}
	enc, err := forJourney(codec, "c1").Encode(in)
	require.NoError(t, err)
	require.Len(t, enc, 3)
	// Fresh nonces: equal plaintexts give different ciphertexts.
	require.False(t, bytes.Equal(enc[0].Data, enc[2].Data))
	dec, err := codec.Decode(enc)
	require.NoError(t, err)
	for i := range in {
		require.True(t, proto.Equal(in[i], dec[i]))
	}
}

func TestDecodeWithoutAStoredKeyIsErrNoKey(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	other := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	enc := encodeOne(t, forJourney(other, "elsewhere"), jsonPayload(t, 1))
	_, err := decodeOne(codec, enc)
	require.ErrorIs(t, err, ErrNoKey)
	require.ErrorContains(t, err, `"elsewhere"`)
	// Decoding must not create the key.
	_, err = decodeOne(codec, enc)
	require.ErrorIs(t, err, ErrNoKey)
}

func TestDecodeRejectsBrokenPayloads(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	enc := encodeOne(t, forJourney(codec, "c1"), jsonPayload(t, 1))

	noSubject := proto.Clone(enc).(*commonpb.Payload)
	delete(noSubject.Metadata, "encryption-subject")
	_, err := decodeOne(codec, noSubject)
	require.ErrorContains(t, err, "no encryption-subject")

	otherCipher := proto.Clone(enc).(*commonpb.Payload)
	otherCipher.Metadata["encryption-cipher"] = []byte("ROT13")
	_, err = decodeOne(codec, otherCipher)
	require.ErrorContains(t, err, `unknown cipher "ROT13"`)

	tampered := proto.Clone(enc).(*commonpb.Payload)
	tampered.Data[len(tampered.Data)-1] ^= 1
	_, err = decodeOne(codec, tampered)
	require.ErrorContains(t, err, "authentication failed")

	short := proto.Clone(enc).(*commonpb.Payload)
	short.Data = short.Data[:10]
	_, err = decodeOne(codec, short)
	require.ErrorContains(t, err, "too short")
}
