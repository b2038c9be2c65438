package email

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"strings"
)

// signerContext separates unsubscribe tokens from any other HMAC made with
// the same secret.
const signerContext = "lifecycle/unsubscribe/v1\x00"

// Signer makes and checks the tokens of one-click unsubscribe links. A token
// is HMAC-SHA256(secret, customer ID), base64url without padding. Tokens do
// not expire: a link in a years-old email must still unsubscribe. Rotating
// the secret invalidates every link sent before.
//
// The zero Signer, or one made with an empty secret, verifies nothing.
type Signer struct {
	secret []byte
}

// NewSigner returns a Signer using a copy of secret.
func NewSigner(secret []byte) Signer {
	return Signer{secret: append([]byte(nil), secret...)}
}

func (s Signer) mac(customerID string) []byte {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte(signerContext))
	h.Write([]byte(customerID))
	return h.Sum(nil)
}

// Token returns the unsubscribe token for customerID.
func (s Signer) Token(customerID string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(customerID))
}

// Verify reports whether token is the unsubscribe token of customerID:
// exactly the string Token returns, so that a customer has one valid token.
// Decoding the token instead would accept other strings too: base64 ignores
// CR and LF, and the last character carries two unused bits that a
// lenient decoder drops. The comparison takes constant time (its length is
// public).
func (s Signer) Verify(customerID, token string) bool {
	if len(s.secret) == 0 || customerID == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(s.Token(customerID))) == 1
}

// UnsubscribeURL returns {baseURL}/v1/unsubscribe?c={customerID}&t={token},
// with both values query-escaped. A trailing slash on baseURL is ignored.
func (s Signer) UnsubscribeURL(baseURL, customerID string) string {
	q := url.Values{"c": {customerID}, "t": {s.Token(customerID)}}
	return strings.TrimRight(baseURL, "/") + "/v1/unsubscribe?" + q.Encode()
}
