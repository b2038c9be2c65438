package privacy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const uiOrigin = "http://localhost:8233"

// codecRequest is a POST of payloads to the codec server's path.
func codecRequest(t *testing.T, path string, payloads ...*commonpb.Payload) *http.Request {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:50000"
	return req
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// payloadsOf reads a codec server's answer.
func payloadsOf(t *testing.T, rec *httptest.ResponseRecorder) []*commonpb.Payload {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(rec.Body.Bytes(), &out))
	return out.Payloads
}

func TestCodecServerDecodesAllButShreddedCustomers(t *testing.T) {
	keys := NewKeys(newPool(t), Keyring{Current: newKEK(t)})
	codec := NewCodec(keys)
	orig1 := jsonPayload(t, profile{"c1", "pat@example.com"})
	orig2 := jsonPayload(t, profile{"c2", "sam@example.com"})
	p1 := encodeOne(t, forJourney(codec, "c1"), orig1)
	p2 := encodeOne(t, forJourney(codec, "c2"), orig2)
	h := CodecServer(codec, CodecServerOptions{})

	got := payloadsOf(t, serve(h, codecRequest(t, "/codec/decode", p1, p2)))
	require.Len(t, got, 2)
	require.True(t, proto.Equal(orig1, got[0]))
	require.True(t, proto.Equal(orig2, got[1]))

	_, err := keys.Shred(t.Context(), "c1")
	require.NoError(t, err)
	// The erased customer's payload comes back as it was, encrypted; the
	// other one in the same request still decodes.
	rec := serve(h, codecRequest(t, "/codec/decode", p1, p2))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NotContains(t, rec.Body.String(), "pat@example.com")
	got = payloadsOf(t, rec)
	require.True(t, proto.Equal(p1, got[0]), "the shredded payload is answered still encrypted")
	require.True(t, proto.Equal(orig2, got[1]))

	// A payload that is broken (not a missing key) still fails the call.
	broken := proto.Clone(p2).(*commonpb.Payload)
	broken.Data = []byte("not ciphertext")
	require.Equal(t, http.StatusBadRequest, serve(h, codecRequest(t, "/codec/decode", broken)).Code)

	// Encoding works too, for the system subject.
	enc := payloadsOf(t, serve(h, codecRequest(t, "/codec/encode", jsonPayload(t, "from the UI"))))
	require.Equal(t, SystemSubject, string(enc[0].GetMetadata()["encryption-subject"]))
}

func TestCodecServerWithATokenRequiresIt(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	h := CodecServer(codec, CodecServerOptions{Token: "s3cret"})
	p := encodeOne(t, codec, jsonPayload(t, 1))

	for name, auth := range map[string]string{"none": "", "wrong": "Bearer s3cre", "basic": "Basic s3cret", "bare": "s3cret"} {
		req := codecRequest(t, "/decode", p)
		req.RemoteAddr = "127.0.0.1:1" // loopback does not replace the token
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := serve(h, req)
		require.Equal(t, http.StatusUnauthorized, rec.Code, name)
		require.Equal(t, "Bearer", rec.Header().Get("WWW-Authenticate"), name)
	}

	req := codecRequest(t, "/decode", p)
	req.RemoteAddr = "10.0.0.1:1234"
	req.Header.Set("Authorization", "Bearer s3cret")
	require.Len(t, payloadsOf(t, serve(h, req)), 1)
}

func TestCodecServerWithoutATokenServesLoopbackOnly(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	h := CodecServer(codec, CodecServerOptions{})
	p := encodeOne(t, codec, jsonPayload(t, 1))
	for addr, want := range map[string]int{
		"10.0.0.1:1234":          http.StatusForbidden,
		"192.168.1.5:80":         http.StatusForbidden,
		"[2001:db8::1]:443":      http.StatusForbidden,
		"127.0.0.1:1":            http.StatusOK,
		"127.1.2.3:9":            http.StatusOK,
		"[::1]:8080":             http.StatusOK,
		"[::ffff:127.0.0.1]:500": http.StatusOK,
	} {
		req := codecRequest(t, "/decode", p)
		req.RemoteAddr = addr
		require.Equal(t, want, serve(h, req).Code, addr)
	}
}

func TestCodecServerCORS(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	h := CodecServer(codec, CodecServerOptions{Token: "t", Origins: []string{uiOrigin}})

	preflight := func(origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodOptions, "/decode", nil)
		req.RemoteAddr = "10.0.0.1:1234"
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace,authorization")
		return serve(h, req)
	}
	rec := preflight(uiOrigin)
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, uiOrigin, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "POST, OPTIONS", rec.Header().Get("Access-Control-Allow-Methods"))
	require.Equal(t, "Content-Type, X-Namespace, Authorization", rec.Header().Get("Access-Control-Allow-Headers"))
	require.Equal(t, "true", rec.Header().Get("Access-Control-Allow-Credentials"))
	require.Equal(t, "Origin", rec.Header().Get("Vary"))

	rec = preflight("https://evil.example")
	require.NotEqual(t, http.StatusNoContent, rec.Code)
	for name := range rec.Header() {
		require.NotContains(t, name, "Access-Control-")
	}

	// The actual request from the UI carries the origin header too.
	req := codecRequest(t, "/decode", encodeOne(t, codec, jsonPayload(t, 1)))
	req.Header.Set("Origin", uiOrigin)
	req.Header.Set("Authorization", "Bearer t")
	rec = serve(h, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, uiOrigin, rec.Header().Get("Access-Control-Allow-Origin"))

	req = codecRequest(t, "/decode", encodeOne(t, codec, jsonPayload(t, 1)))
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Authorization", "Bearer t")
	rec = serve(h, req)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}

func TestCodecServerAnswersOnlyPOST(t *testing.T) {
	codec := NewCodec(NewKeys(newPool(t), Keyring{Current: newKEK(t)}))
	h := CodecServer(codec, CodecServerOptions{})
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req := httptest.NewRequest(m, "/decode", nil)
		req.RemoteAddr = "127.0.0.1:1"
		rec := serve(h, req)
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code, m)
		require.Equal(t, "POST, OPTIONS", rec.Header().Get("Allow"))
	}
	require.Equal(t, http.StatusNotFound, serve(h, codecRequest(t, "/elsewhere")).Code)
}
