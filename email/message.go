package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"slices"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/acme/lifecycle/customer"
)

// Message categories: customer.Categories, as the text Message.Category
// holds.
const (
	// CategoryMarketing is mail a customer can opt out of; it must carry an
	// UnsubscribeURL and gets RFC 8058 one-click unsubscribe headers.
	CategoryMarketing = string(customer.CategoryMarketing)
	// CategoryTransactional is mail the customer needs regardless of
	// marketing consent (receipts, owner notifications, ...).
	CategoryTransactional = string(customer.CategoryTransactional)
	// HeaderCategory carries the category on every email.
	HeaderCategory gomail.Header = "X-Lifecycle-Category"
)

// Message is one email to one recipient.
type Message struct {
	// MessageID becomes the Message-ID header. Derive it from the send's
	// idempotency key with MessageIDFor, so a retried send carries the same
	// ID. With or without angle brackets. Required.
	MessageID string
	// To is the bare recipient address ("jane@example.com"); the display
	// name goes into ToName.
	To     string
	ToName string
	// Subject must not be empty.
	Subject string
	// Text and HTML are the two bodies; with both set the message is
	// multipart/alternative. At least one is required.
	Text, HTML string
	// UnsubscribeURL is the one-click unsubscribe link (Signer.UnsubscribeURL);
	// required for marketing mail, optional for transactional mail.
	UnsubscribeURL string
	// Category is CategoryMarketing or CategoryTransactional.
	Category string
	// Headers are extra headers; names must start with "X-" (e.g.
	// X-Journey-Step, X-Campaign-Version).
	Headers map[string]string
	// BeforeEnd, when set, is called once the server has taken the
	// envelope (MAIL FROM, RCPT TO, DATA) and before the end of the data,
	// which is what makes the server accept the message; an error aborts
	// the send, with nothing accepted. A caller that must record every
	// accepted message before it lets another one be accepted (the
	// broadcast's bound on messages a crash leaves in doubt) waits here,
	// while the round trips before it overlap with its other work.
	BeforeEnd func() error
}

// MessageIDFor derives the Message-ID for an idempotency key:
// "<" + first 32 hex digits of sha256(key) + "@" + domain of fromAddress + ">".
// The same key always gives the same ID. fromAddress may be a bare address
// or "Name <addr>"; without a domain, "localhost" is used.
func MessageIDFor(key, fromAddress string) string {
	sum := sha256.Sum256([]byte(key))
	return "<" + hex.EncodeToString(sum[:])[:32] + "@" + domainOf(fromAddress) + ">"
}

func domainOf(address string) string {
	if a, err := mail.ParseAddress(address); err == nil {
		address = a.Address
	}
	i := strings.LastIndexByte(address, '@')
	if i < 0 || i == len(address)-1 {
		return "localhost"
	}
	return strings.ToLower(strings.TrimRight(address[i+1:], ">"))
}

// lineProblem says what is wrong with a value that goes into a header line
// ("" when nothing is), by the customer's rule for one line of text
// (customer.CheckLine): a line break could inject headers; other control
// characters and invalid UTF-8 are refused or mangled on the way.
func lineProblem(v string) string {
	var fe *customer.FieldError
	if errors.As(customer.CheckLine("", v), &fe) {
		return fe.Problem
	}
	return ""
}

func checkLine(field, v string) error {
	if p := lineProblem(v); p != "" {
		return invalid(field, "%s", p)
	}
	return nil
}

// bareAddress accepts "local@domain" only, by the customer's rule for an
// address (customer.CheckEmail); surrounding spaces are trimmed. problem
// says why v was refused.
func bareAddress(v string) (addr, problem string) {
	if p := lineProblem(v); p != "" {
		return "", p
	}
	v = strings.TrimSpace(v)
	var fe *customer.FieldError
	if errors.As(customer.CheckEmail("", v), &fe) {
		return "", fe.Problem
	}
	return v, ""
}

// normalizeMessageID returns id without angle brackets after checking it is
// a single local@domain token.
func normalizeMessageID(id string) (string, error) {
	const field = "MessageID"
	if err := checkLine(field, id); err != nil {
		return "", err
	}
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") {
		id = id[1 : len(id)-1]
	}
	if id == "" {
		return "", invalid(field, "is empty; derive it from the idempotency key with email.MessageIDFor")
	}
	if len(id) > 250 {
		return "", invalid(field, "is longer than 250 characters")
	}
	at := strings.IndexByte(id, '@')
	if at <= 0 || at == len(id)-1 || strings.Count(id, "@") != 1 {
		return "", invalid(field, "%q must look like local@domain", id)
	}
	for _, r := range id {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`<>()[]\,;:"`, r) {
			return "", invalid(field, "%q contains %q", id, r)
		}
	}
	return id, nil
}

func checkUnsubscribeURL(v string) error {
	const field = "UnsubscribeURL"
	if err := checkLine(field, v); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil {
		return invalid(field, "%q is not a URL: %v", v, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid(field, "%q must be an absolute http(s) URL", v)
	}
	if strings.ContainsAny(v, " <>,") {
		return invalid(field, "%q must not contain spaces, '<', '>' or ','", v)
	}
	return nil
}

// checkHeaderName accepts X- names made of letters, digits and dashes.
func checkHeaderName(name string) error {
	field := "Headers[" + name + "]"
	if err := checkLine(field, name); err != nil {
		return err
	}
	if len(name) < 3 || !strings.EqualFold(name[:2], "x-") {
		return invalid(field, "is not an extra header: names must start with \"X-\"")
	}
	for _, r := range name {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return invalid(field, "has an invalid name: only letters, digits and '-' are allowed")
		}
	}
	return nil
}

// Render validates m and returns it as Send would transmit it (RFC 5322,
// CRLF line ends), without talking to the server: a message Render refuses
// is one Send refuses, with the same *PermanentError.
func (s *Sender) Render(m Message) ([]byte, error) {
	msg, err := build(m, s.from)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("email: render message: %w", err)
	}
	return buf.Bytes(), nil
}

// build validates m and turns it into a go-mail message from the sender's
// From header. Every error is a *PermanentError wrapping ErrInvalidMessage.
func build(m Message, from *mail.Address) (*gomail.Msg, error) {
	to, problem := bareAddress(m.To)
	if problem != "" {
		return nil, invalid("To", "%s", problem)
	}
	if err := checkLine("ToName", m.ToName); err != nil {
		return nil, err
	}
	if err := checkLine("Subject", m.Subject); err != nil {
		return nil, err
	}
	if strings.TrimSpace(m.Subject) == "" {
		return nil, invalid("Subject", "is empty")
	}
	msgID, err := normalizeMessageID(m.MessageID)
	if err != nil {
		return nil, err
	}
	switch m.Category {
	case CategoryMarketing:
		if m.UnsubscribeURL == "" {
			return nil, invalid("UnsubscribeURL", "is required for marketing mail (RFC 8058 one-click unsubscribe)")
		}
	case CategoryTransactional:
	default:
		return nil, invalid("Category", "is %q; want %q or %q", m.Category, CategoryMarketing, CategoryTransactional)
	}
	if m.UnsubscribeURL != "" {
		if err := checkUnsubscribeURL(m.UnsubscribeURL); err != nil {
			return nil, err
		}
	}
	if m.Text == "" && m.HTML == "" {
		return nil, invalid("Text", "and HTML are both empty")
	}
	names := make([]string, 0, len(m.Headers))
	for name, value := range m.Headers {
		if err := checkHeaderName(name); err != nil {
			return nil, err
		}
		if err := checkLine("Headers["+name+"]", value); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	slices.Sort(names)

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	// mail.Address.String quotes and RFC 2047-encodes names as needed, so
	// commas, quotes and non-ASCII letters in names are safe.
	if err := msg.From(from.String()); err != nil {
		return nil, invalid("From", "%v", err)
	}
	if err := msg.To((&mail.Address{Name: m.ToName, Address: to}).String()); err != nil {
		return nil, invalid("To", "%v", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(msgID)
	msg.SetDate()
	if m.UnsubscribeURL != "" {
		msg.SetListUnsubscribe(m.UnsubscribeURL)
		msg.SetListUnsubscribePost()
	}
	// The category is labelled on every email, so a receiving system or a
	// person reading the headers can tell the mail the contact policy and
	// unsubscribes govern from the mail they do not.
	msg.SetGenHeader(HeaderCategory, m.Category)
	for _, name := range names {
		msg.SetGenHeader(gomail.Header(name), m.Headers[name])
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyWriter(gomail.TypeTextPlain, bodyWriter(m.Text, m.BeforeEnd))
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyWriter(gomail.TypeTextPlain, bodyWriter(m.Text, m.BeforeEnd))
	default:
		msg.SetBodyWriter(gomail.TypeTextHTML, bodyWriter(m.HTML, m.BeforeEnd))
	}
	return msg, nil
}

// bodyWriter writes the first body part, calling beforeEnd (when set)
// first: go-mail writes the message after the server answered DATA, and
// ends the data only once the whole message is written, so beforeEnd runs
// after the envelope's round trips and before the server can accept.
func bodyWriter(body string, beforeEnd func() error) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		if beforeEnd != nil {
			if err := beforeEnd(); err != nil {
				return 0, fmt.Errorf("email: before the end of the data: %w", err)
			}
		}
		n, err := io.WriteString(w, body)
		return int64(n), err
	}
}
