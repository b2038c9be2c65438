package privacy

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// metadataEncoding is the payload metadata key of the encoding.
	metadataEncoding = converter.MetadataEncoding
	// encodingEncrypted marks an encrypted payload; Temporal's tools show
	// it as binary.
	encodingEncrypted = "binary/encrypted"
	// metadataSubject names the subject whose data key encrypted the
	// payload: decoding needs no context.
	metadataSubject = "encryption-subject"
	// metadataCipher names the cipher, so that another one can be added
	// later next to payloads already stored.
	metadataCipher  = "encryption-cipher"
	cipherAES256GCM = "AES256-GCM"
)

// keyTimeout bounds a key lookup: the codec's interface has no context.
const keyTimeout = 10 * time.Second

// Codec is the Temporal payload codec that encrypts every payload with the
// data key of its subject. Without a serialization context the subject is
// SystemSubject; WithSerializationContext gives the codec of a workflow's
// subject.
type Codec struct {
	keys    *Keys
	subject string
}

var (
	_ converter.PayloadCodec                         = (*Codec)(nil)
	_ converter.PayloadCodecWithSerializationContext = (*Codec)(nil)
)

// NewCodec returns the codec encrypting with keys, for SystemSubject until
// given a serialization context.
func NewCodec(keys *Keys) *Codec {
	return &Codec{keys: keys, subject: SystemSubject}
}

// WithSerializationContext returns the codec for the subject of the
// context's workflow (SubjectOf its WorkflowID); contexts without a
// workflow give SystemSubject. Only encoding uses the subject: decoding
// reads it from each payload.
func (c *Codec) WithSerializationContext(sc converter.SerializationContext) converter.PayloadCodec {
	subject := SystemSubject
	switch sc := sc.(type) {
	case converter.WorkflowSerializationContext:
		subject = SubjectOf(sc.WorkflowID)
	case converter.ActivitySerializationContext:
		subject = SubjectOf(sc.WorkflowID)
	}
	if subject == c.subject {
		return c
	}
	return &Codec{keys: c.keys, subject: subject}
}

// Encode encrypts each payload (the whole payload, metadata included, as
// protobuf) with the data key of the codec's subject, creating the key on
// first use. A payload already encrypted is passed through: encoding twice
// would only bury it deeper.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	var aead cipher.AEAD
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil || isEncrypted(p) {
			out[i] = p
			continue
		}
		if aead == nil {
			var err error
			if aead, err = c.key(c.subject, true); err != nil {
				return nil, fmt.Errorf("encrypt payload: %w", err)
			}
		}
		plaintext, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encrypt payload for %q: marshal: %w", c.subject, err)
		}
		data, err := seal(aead, plaintext, []byte(c.subject))
		if err != nil {
			return nil, fmt.Errorf("encrypt payload for %q: %w", c.subject, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				metadataEncoding: []byte(encodingEncrypted),
				metadataSubject:  []byte(c.subject),
				metadataCipher:   []byte(cipherAES256GCM),
			},
			Data: data,
		}
	}
	return out, nil
}

// Decode decrypts the encrypted payloads with the data key of the subject
// their metadata names, whatever the codec's own subject; other payloads
// (written before encryption, search attributes) pass through. A shredded
// subject's payload gives an error wrapping ErrShredded.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil || !isEncrypted(p) {
			out[i] = p
			continue
		}
		d, err := c.decrypt(p)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

func (c *Codec) decrypt(p *commonpb.Payload) (*commonpb.Payload, error) {
	subject := string(p.GetMetadata()[metadataSubject])
	if subject == "" {
		return nil, errors.New("decrypt payload: no " + metadataSubject + " in its metadata")
	}
	if ci := string(p.GetMetadata()[metadataCipher]); ci != cipherAES256GCM {
		return nil, fmt.Errorf("decrypt payload of %q: unknown cipher %q", subject, ci)
	}
	aead, err := c.key(subject, false)
	if err != nil {
		return nil, fmt.Errorf("decrypt payload: %w", err)
	}
	plaintext, err := open(aead, p.GetData(), []byte(subject))
	if err != nil {
		return nil, fmt.Errorf("decrypt payload of %q: %w", subject, err)
	}
	var d commonpb.Payload
	if err := proto.Unmarshal(plaintext, &d); err != nil {
		return nil, fmt.Errorf("decrypt payload of %q: unmarshal: %w", subject, err)
	}
	return &d, nil
}

// key looks the data key up with a deadline of its own.
func (c *Codec) key(subject string, create bool) (cipher.AEAD, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keyTimeout)
	defer cancel()
	return c.keys.AEAD(ctx, subject, create)
}

func isEncrypted(p *commonpb.Payload) bool {
	return string(p.GetMetadata()[metadataEncoding]) == encodingEncrypted
}
