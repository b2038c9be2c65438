package privacy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/internal/testenv"
)

// newDatabase returns the URL of a fresh, migrated database and a pool on
// it that is closed when the test ends.
func newDatabase(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	url := testenv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := crm.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	require.NoError(t, store.Migrate(ctx))
	return url, store.Pool()
}

// newPool is newDatabase's pool.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	_, pool := newDatabase(t)
	return pool
}

// newKEK returns a random KEK.
func newKEK(t testing.TB) KEK {
	t.Helper()
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	k, err := ParseKEK(base64.StdEncoding.EncodeToString(b))
	require.NoError(t, err)
	return k
}

// forJourney is the codec as the SDK uses it for customer's journey.
func forJourney(c *Codec, customer string) converter.PayloadCodec {
	return c.WithSerializationContext(converter.WorkflowSerializationContext{
		Namespace: "default", WorkflowID: "journey/" + customer,
	})
}

// jsonPayload is what the default data converter makes of v.
func jsonPayload(t testing.TB, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

// encodeOne encodes p with codec and returns the single result.
func encodeOne(t testing.TB, codec converter.PayloadCodec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	out, err := codec.Encode([]*commonpb.Payload{p})
	require.NoError(t, err)
	require.Len(t, out, 1)
	return out[0]
}

// decodeOne decodes a single payload with codec.
func decodeOne(codec converter.PayloadCodec, p *commonpb.Payload) (*commonpb.Payload, error) {
	out, err := codec.Decode([]*commonpb.Payload{p})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// profile is a payload with personal data in it.
type profile struct {
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
}
