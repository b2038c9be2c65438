package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/email"
)

// TestUnsubscribeRefusesMalleatedToken: only the exact token string of a
// link unsubscribes; one that decodes to the same MAC (the unused low bits
// of its last character flipped, a line break added) is refused.
func TestUnsubscribeRefusesMalleatedToken(t *testing.T) {
	h := newHarness(t)
	tok := email.NewSigner(testUnsubSecret).Token("c1")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	require.GreaterOrEqual(t, last, 0, tok)

	target := func(token string) string {
		return "/v1/unsubscribe?" + url.Values{"c": {"c1"}, "t": {token}}.Encode()
	}
	rec := h.serve(httptest.NewRequest(http.MethodGet, target(tok), nil))
	require.Equal(t, http.StatusOK, rec.Code, "the real token")

	malleated := []string{tok + "\n"}
	for _, bits := range []int{1, 2, 3} {
		malleated = append(malleated, tok[:len(tok)-1]+string(alphabet[last^bits]))
	}
	for _, bad := range malleated {
		rec := h.serve(httptest.NewRequest(http.MethodGet, target(bad), nil))
		assert.Equal(t, http.StatusForbidden, rec.Code, "GET %q", bad)

		req := httptest.NewRequest(http.MethodPost, target(bad), strings.NewReader("List-Unsubscribe=One-Click"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec = h.serve(req)
		assert.Equal(t, http.StatusForbidden, rec.Code, "POST %q", bad)
	}
	assert.Empty(t, h.temporal.sent())
}
