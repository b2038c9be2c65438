package email_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/acme/lifecycle/email"
)

func TestSignerRoundTrip(t *testing.T) {
	s := email.NewSigner([]byte("secret-1"))
	for _, id := range []string{"cust-42", "42", "jane@example.test", "with space & = ? / ü"} {
		tok := s.Token(id)
		if !s.Verify(id, tok) {
			t.Errorf("Verify(%q, Token) = false", id)
		}
		if tok != s.Token(id) {
			t.Errorf("Token(%q) is not stable", id)
		}
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("Token(%q) = %q is not unpadded base64url", id, tok)
		}
	}
}

func TestSignerDetectsTampering(t *testing.T) {
	s := email.NewSigner([]byte("secret-1"))
	tok := s.Token("cust-42")

	flipped := []byte(tok)
	if flipped[0] == 'A' {
		flipped[0] = 'B'
	} else {
		flipped[0] = 'A'
	}
	cases := map[string]struct {
		signer   email.Signer
		customer string
		token    string
	}{
		"other customer":     {s, "cust-43", tok},
		"modified token":     {s, "cust-42", string(flipped)},
		"truncated token":    {s, "cust-42", tok[:len(tok)-1]},
		"extended token":     {s, "cust-42", tok + "A"},
		"empty token":        {s, "cust-42", ""},
		"not base64":         {s, "cust-42", "!!!" + tok[3:]},
		"padded token":       {s, "cust-42", tok + "="},
		"other secret":       {email.NewSigner([]byte("secret-2")), "cust-42", tok},
		"empty secret":       {email.NewSigner(nil), "cust-42", email.NewSigner(nil).Token("cust-42")},
		"zero Signer":        {email.Signer{}, "cust-42", email.Signer{}.Token("cust-42")},
		"empty customer":     {s, "", s.Token("")},
		"customer as prefix": {s, "cust-4", tok},
	}
	for name, tc := range cases {
		if tc.signer.Verify(tc.customer, tc.token) {
			t.Errorf("%s: Verify accepted a bad token", name)
		}
	}
}

// TestSignerAcceptsOneTokenString: a customer has exactly one valid token.
// A 32-byte MAC is 43 base64url characters, the last of which carries two
// unused low bits; a lenient decoder ignores them (and CR/LF anywhere), so
// several strings would decode to the same MAC.
func TestSignerAcceptsOneTokenString(t *testing.T) {
	s := email.NewSigner([]byte("secret-1"))
	for _, id := range []string{"cust-42", "42", "jane@example.test"} {
		tok := s.Token(id)
		if len(tok) != 43 {
			t.Fatalf("Token(%q) has %d characters, want 43", id, len(tok))
		}
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, tok[42])
		if last < 0 {
			t.Fatalf("Token(%q) = %q ends outside the base64url alphabet", id, tok)
		}
		// The two unused bits, one at a time and both: same MAC bytes.
		for _, bits := range []int{1, 2, 3} {
			bad := tok[:42] + string(alphabet[last^bits])
			if s.Verify(id, bad) {
				t.Errorf("Verify(%q) accepted %q: the unused bits (%b) of the last character flipped", id, bad, bits)
			}
		}
		// Every other single-byte change of the last character.
		for c := range 256 {
			if byte(c) == tok[42] {
				continue
			}
			if bad := tok[:42] + string([]byte{byte(c)}); s.Verify(id, bad) {
				t.Errorf("Verify(%q) accepted %q: last character changed to %q", id, bad, byte(c))
			}
		}
		// Line breaks, which base64 decoders skip.
		for _, bad := range []string{tok + "\n", tok + "\r\n", tok[:20] + "\n" + tok[20:], "\r" + tok} {
			if s.Verify(id, bad) {
				t.Errorf("Verify(%q) accepted %q: a line break added", id, bad)
			}
		}
		if !s.Verify(id, tok) {
			t.Errorf("Verify(%q) refused its own token", id)
		}
	}
}

func TestSignerCopiesSecret(t *testing.T) {
	secret := []byte("secret-1")
	s := email.NewSigner(secret)
	tok := s.Token("cust-42")
	secret[0] = 'X'
	if !s.Verify("cust-42", tok) || s.Token("cust-42") != tok {
		t.Error("changing the caller's secret slice changed the Signer")
	}
}

func TestUnsubscribeURL(t *testing.T) {
	s := email.NewSigner([]byte("secret-1"))
	id := "cust 42&x=1/ü"
	for _, base := range []string{"https://lifecycle.example", "https://lifecycle.example/"} {
		raw := s.UnsubscribeURL(base, id)
		if !strings.HasPrefix(raw, "https://lifecycle.example/v1/unsubscribe?c=") {
			t.Errorf("UnsubscribeURL(%q) = %q", base, raw)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("UnsubscribeURL = %q: %v", raw, err)
		}
		q := u.Query()
		if q.Get("c") != id || len(q) != 2 {
			t.Errorf("URL %q carries c=%q (want %q) and %d parameters", raw, q.Get("c"), id, len(q))
		}
		if !s.Verify(q.Get("c"), q.Get("t")) {
			t.Errorf("the token in %q does not verify", raw)
		}
		if strings.ContainsAny(raw, " ü") {
			t.Errorf("URL %q is not escaped", raw)
		}
	}
	// A base URL with a path prefix keeps it.
	if got := s.UnsubscribeURL("http://127.0.0.1:8080/app", "c1"); !strings.HasPrefix(got, "http://127.0.0.1:8080/app/v1/unsubscribe?c=c1&t=") {
		t.Errorf("with a path prefix: %q", got)
	}
}

func TestMessageIDFor(t *testing.T) {
	a := email.MessageIDFor("journey/cust-42/step-3", "hello@Lifecycle.Example")
	if a != email.MessageIDFor("journey/cust-42/step-3", "hello@Lifecycle.Example") {
		t.Error("MessageIDFor is not stable")
	}
	if !regexp.MustCompile(`^<[0-9a-f]{32}@lifecycle\.example>$`).MatchString(a) {
		t.Errorf("MessageIDFor = %q, want <32 hex digits@lifecycle.example>", a)
	}
	// sha256("journey/cust-42/step-3"), first 32 hex digits: a fixed
	// value, so the derivation never changes silently (retries after a
	// deploy must produce the same ID).
	if want := "<18de6a155168cf4ab9070c29199a9bd4@lifecycle.example>"; a != want {
		t.Errorf("MessageIDFor = %q, want %q", a, want)
	}
	if b := email.MessageIDFor("journey/cust-42/step-4", "hello@lifecycle.example"); b == a {
		t.Error("different keys give the same Message-ID")
	}
	if got := email.MessageIDFor("k", "Lifecycle <team@mail.example>"); !strings.HasSuffix(got, "@mail.example>") {
		t.Errorf("with a display name: %q", got)
	}
	if got := email.MessageIDFor("k", "nodomain"); !strings.HasSuffix(got, "@localhost>") {
		t.Errorf("without a domain: %q", got)
	}
}
