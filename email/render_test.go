package email_test

import (
	"bytes"
	"errors"
	"net/mail"
	"strings"
	"testing"

	"github.com/acme/lifecycle/email"
)

// Render builds the message Send would send, without a server, and
// refuses what Send refuses: the customer rules (package customer) for the
// address and for header lines.
func TestRenderWithoutServer(t *testing.T) {
	s, err := email.NewSender(email.Config{Host: "127.0.0.1", Port: 9, TLSMode: email.TLSNone, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	m := transactional("ada@engines.example", "Welcome")
	m.ToName = "Zoë O'Brien (Émile \"Les Bières\", <SARL>)"
	raw, err := s.Render(m)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != m.ToName || to[0].Address != m.To {
		t.Errorf("To %q reads back as %v (%v)", msg.Header.Get("To"), to, err)
	}

	for field, mutate := range map[string]func(*email.Message){
		"To":      func(m *email.Message) { m.To = "jürgen@engines.example" },
		"ToName":  func(m *email.Message) { m.ToName = "Ada\x00" },
		"Subject": func(m *email.Message) { m.Subject = "Hi\u2028Bcc: x@y.example" },
	} {
		m := transactional(strings.Repeat("l", 10)+"@engines.example", "Hello")
		mutate(&m)
		_, err := s.Render(m)
		var pe *email.PermanentError
		if !errors.As(err, &pe) || pe.Field != field || !errors.Is(err, email.ErrInvalidMessage) {
			t.Errorf("%s: Render = %v, want a PermanentError for %s", field, err, field)
		}
	}
	if st := s.Stats(); st.Dials != 0 {
		t.Errorf("Render dialled the server: %+v", st)
	}
}
