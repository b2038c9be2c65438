// Package customer is the one definition of what each field of a customer
// and of their events may hold. The HTTP API, the journey workflow, the CRM
// and the mailer all check with these functions, so that whatever the API
// accepts can be stored and sent: a value refused further down would be
// answered 202 and then fail inside the journey, where nobody sees it.
//
// It also holds what every package means by the same words: the journey's
// vocabulary (vocabulary.go: stages, lead sources, event types, email
// categories, suppression reasons, handoff and task statuses) and the
// customer's Profile, which every other shape of a contact is built from.
// It imports nothing of this module, so every package can import it.
//
//	field                        rule
//	customer_id                  1-128 of letters, digits and . _ : @ - (it is part of the workflow ID)
//	email, owner_email           a bare ASCII address name@domain: at most 254 characters, 64 before the @ (RFC 5321)
//	first_name, last_name, role  free text, at most 100 characters
//	company                      free text, at most 200 characters
//	company_size                 0 (unknown) to 10,000,000
//	time_zone                    empty, or an IANA name such as Europe/Berlin (not Local)
//	lead_source                  empty, or one of LeadSources
//	event id                     1-200 characters, no control characters, no white space at either end
//	event type                   1-64 printable ASCII characters, no white space
//	event properties             a JSON object: at most 8 KiB, 5 levels deep, keys at most 100 characters
//
// Free text is one line of valid UTF-8 without control characters
// (unicode.IsControl: NUL, tab, ESC, DEL, C1...) or line breaks (CR, LF,
// U+2028, U+2029): PostgreSQL cannot store NUL, and names go into a mail
// header, where a line break injects headers and other control characters
// are refused or garbled. Lengths count characters (runes). The caps are
// generous for real names and companies; they bound what a journey carries
// in its history and what a display name puts in a header line. The
// largest employers have a few million people; 10,000,000 leaves room and
// fits the CRM's integer column.
//
// Addresses are stricter than net/mail: no display name, angle brackets,
// quoted local part, comment or IP literal; the domain is a host name with
// at least one dot; ASCII only, as the mailer does not use SMTPUTF8
// (internationalised addresses are not supported).
//
// Event ids may hold any printable text (CRMs have their own schemes) but
// no white space at either end: the CRM trims ids, so " e1" and "e1" would
// be two events in the journey and one in the CRM. Event types are
// identifiers matched exactly against the campaign; printable ASCII keeps
// look-alikes out (a Cyrillic "о", a no-break space), which would be
// recorded but never score. Unknown types are valid: the journey records
// them.
//
// Property values may be any JSON, but PostgreSQL's jsonb cannot store
// U+0000, and invalid UTF-8 would silently become U+FFFD on the way in, so
// both are refused; the size and depth caps keep one event from bloating
// the CRM and the journey's history.
//
// Errors are *FieldError, "<field>: <problem>". A value is repeated in the
// message only when it is short and printable, never a long or binary one.
package customer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones from the embedded tz database when the host has none
	"unicode"
	"unicode/utf8"
)

// Limits of the fields; see the package documentation.
const (
	MaxCustomerID      = 128
	MaxEmail           = 254 // RFC 5321: a 256-octet path minus the angle brackets
	MaxEmailLocalPart  = 64  // RFC 5321, section 4.5.3.1.1
	MaxName            = 100 // first_name, last_name, role
	MaxCompany         = 200
	MaxCompanySize     = 10_000_000
	MaxTimeZone        = 64
	MaxEventID         = 200
	MaxEventType       = 64
	MaxPropertiesSize  = 8 << 10 // bytes of compact JSON
	MaxPropertiesDepth = 5       // the properties object itself is level 1
	MaxPropertyKey     = 100
)

// FieldError says which field is wrong and why. Error() is
// "<field>: <problem>": the HTTP API finds the field by that prefix.
type FieldError struct {
	// Field is the caller's name of the field (a JSON name, or a CRM
	// column such as "events[3].event_id").
	Field string
	// Problem says what is wrong, without repeating long or binary values.
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// shown quotes v for a message, followed by ": ", when it is short and
// printable; otherwise it returns "" and the value is left out.
func shown(v string) string {
	if len(v) == 0 || len(v) > 64 || textProblem(v) != "" {
		return ""
	}
	return fmt.Sprintf("%q: ", v)
}

// textProblem says why v is not one line of printable text ("" if it is).
func textProblem(v string) string {
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	n := 0
	for _, r := range v {
		n++
		switch {
		case r == '\r' || r == '\n' || r == '\v' || r == '\f' || r == 0x85 || r == 0x2028 || r == 0x2029:
			return fmt.Sprintf("must not contain line breaks (%U at character %d)", r, n)
		case unicode.IsControl(r):
			return fmt.Sprintf("must not contain control characters (%U at character %d)", r, n)
		}
	}
	return ""
}

// CheckLine accepts one line of text of any length: valid UTF-8, no
// control characters, no line breaks. The mailer checks header values
// with it.
func CheckLine(field, v string) error {
	if p := textProblem(v); p != "" {
		return invalid(field, "%s", p)
	}
	return nil
}

// CheckText accepts one line of text of at most maxChars characters.
func CheckText(field, v string, maxChars int) error {
	if n := utf8.RuneCountInString(v); n > maxChars {
		return invalid(field, "is %d characters long; at most %d", n, maxChars)
	}
	return CheckLine(field, v)
}

// CheckName is the rule of first_name, last_name and role (empty is valid).
func CheckName(field, v string) error { return CheckText(field, v, MaxName) }

// CheckCompany is the rule of company (empty is valid).
func CheckCompany(field, v string) error { return CheckText(field, v, MaxCompany) }

// CheckCompanySize accepts 0 (unknown) to MaxCompanySize.
func CheckCompanySize(field string, n int) error {
	switch {
	case n < 0:
		return invalid(field, "%d: must not be negative", n)
	case n > MaxCompanySize:
		return invalid(field, "%d: must be at most %d", n, MaxCompanySize)
	}
	return nil
}

var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

const customerIDChars = "letters, digits and . _ : @ -"

// CheckCustomerID accepts the ids that can name a journey
// ("journey/<id>") and a CRM contact.
func CheckCustomerID(field, v string) error {
	switch {
	case v == "":
		return invalid(field, "must not be empty (1-%d characters of %s)", MaxCustomerID, customerIDChars)
	case len(v) > MaxCustomerID:
		return invalid(field, "is %d bytes long; at most %d characters of %s", len(v), MaxCustomerID, customerIDChars)
	case !customerIDPattern.MatchString(v):
		return invalid(field, "%smust be 1-%d characters of %s", shown(v), MaxCustomerID, customerIDChars)
	case v == ReservedCustomerID:
		return invalid(field, "%q is reserved (it names the encryption key of payloads that belong to no customer)", v)
	}
	return nil
}

// ReservedCustomerID is not a customer: privacy.SystemSubject, the subject
// of the data key that encrypts payloads of no one customer (broadcasts),
// which an erase must never destroy.
const ReservedCustomerID = "system"

// CheckEmail accepts a bare address, name@domain; see the package
// documentation. Empty is invalid: callers skip optional empty fields.
func CheckEmail(field, v string) error {
	const bare = "must be a bare email address (name@domain)"
	if v == "" {
		return invalid(field, "must not be empty; want a bare address like name@example.com")
	}
	if len(v) > MaxEmail {
		return invalid(field, "is %d characters long; at most %d (RFC 5321)", len(v), MaxEmail)
	}
	for i := range len(v) {
		switch b := v[i]; {
		case b >= utf8.RuneSelf:
			return invalid(field, "must be ASCII: internationalised addresses are not supported")
		case b < ' ' || b == 0x7f:
			return invalid(field, "must not contain control characters (%U at character %d)", rune(b), i+1)
		}
	}
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return invalid(field, "%s%s", shown(v), bare)
	}
	if n := len(v[:at]); n > MaxEmailLocalPart {
		return invalid(field, "the part before the @ is %d characters long; at most %d (RFC 5321)", n, MaxEmailLocalPart)
	}
	// net/mail checks the local part is a dot-atom; the round trip refuses
	// what it would accept but rewrite (quotes, brackets, comments, names).
	a, err := mail.ParseAddress(v)
	if err != nil {
		return invalid(field, "%s%s", shown(v), bare)
	}
	if a.Name != "" || a.Address != v {
		return invalid(field, "%s%s, without display name, angle brackets, quotes or comments", shown(v), bare)
	}
	if !hostName(v[at+1:]) {
		return invalid(field, "%sthe domain must be a host name like example.com: letters, digits and hyphens between dots (no IP literals)", shown(v))
	}
	return nil
}

// hostName accepts a domain of at least two labels of letters, digits and
// inner hyphens, each at most 63 characters (RFC 1035): net/mail also
// accepts "a@b", "a@b!c" and "a@[1.2.3.4]", which no public mail server
// delivers to.
func hostName(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := range len(l) {
			c := l[i]
			if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// CheckLeadSource accepts "" (unknown) and the LeadSources.
func CheckLeadSource(field, v string) error {
	if v == "" || IsLeadSource(v) {
		return nil
	}
	return invalid(field, "%smust be one of %s", shown(v), strings.Join(validLeadSources, ", "))
}

var (
	timeZonePattern = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
	timeZones       sync.Map // name -> struct{}: zones that loaded once
)

// CheckTimeZone accepts "" (unknown) and IANA names. "Local" and the
// system's "localtime" depend on the server; the "posix/" and "right/"
// copies (the latter counts leap seconds) are not the zones people mean.
func CheckTimeZone(field, v string) error {
	if v == "" {
		return nil
	}
	if _, ok := timeZones.Load(v); ok {
		return nil
	}
	switch {
	case v == "Local" || v == "localtime" || v == "posixrules":
		return invalid(field, "%sdepends on the server; use an IANA name such as Europe/Berlin", shown(v))
	case len(v) > MaxTimeZone || !timeZonePattern.MatchString(v) ||
		strings.HasPrefix(v, "posix/") || strings.HasPrefix(v, "right/"):
		return invalid(field, "%sunknown IANA time zone (want a name such as Europe/Berlin)", shown(v))
	}
	if _, err := time.LoadLocation(v); err != nil {
		return invalid(field, "%sunknown IANA time zone (want a name such as Europe/Berlin)", shown(v))
	}
	timeZones.Store(v, struct{}{})
	return nil
}

// CheckEventID accepts the sender's event id: the journey and the CRM
// deduplicate by it.
func CheckEventID(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "must not be empty")
	}
	if err := CheckText(field, v, MaxEventID); err != nil {
		return err
	}
	if strings.TrimSpace(v) != v {
		return invalid(field, "must not begin or end with white space")
	}
	return nil
}

// CheckEventType accepts 1-64 printable ASCII characters, with single
// spaces between words ("Order Completed", as some trackers name events)
// but none at either end. Unknown types are valid: the journey records
// them. ASCII keeps look-alike types (a Cyrillic "о" in "login") out: they
// would be recorded and never scored.
func CheckEventType(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "must not be empty")
	}
	for i := range len(v) {
		if c := v[i]; c < ' ' || c >= 0x7f {
			return invalid(field, "%smust be printable ASCII, like pricing_viewed (byte %d is not)", shown(v), i+1)
		}
	}
	if strings.TrimSpace(v) != v || strings.Contains(v, "  ") {
		return invalid(field, "%smust not begin or end with a space or hold two in a row", shown(v))
	}
	if len(v) > MaxEventType {
		return invalid(field, "is %d characters long; at most %d", len(v), MaxEventType)
	}
	return nil
}

// CheckProperties accepts event properties that the CRM stores as they are
// (jsonb) and reads back equal; nil is an empty object.
func CheckProperties(field string, p map[string]any) error {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return invalid(field, "cannot be encoded as JSON: %v", err)
	}
	if len(b) > MaxPropertiesSize {
		return invalid(field, "is %d bytes as JSON; at most %d", len(b), MaxPropertiesSize)
	}
	// encoding/json writes invalid UTF-8 as the escape \ufffd (a real
	// U+FFFD stays unescaped); a json.Marshaler may return raw bytes.
	if !utf8.Valid(b) || hasEscape(b, `\ufffd`) {
		return invalid(field, "must not contain invalid UTF-8 in keys or string values")
	}
	return walkProperties(field, b)
}

// hasEscape reports whether the JSON text b holds the escape sequence esc
// (a backslash that is not itself escaped, followed by the rest of esc).
func hasEscape(b []byte, esc string) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if bytes.HasPrefix(b[i:], []byte(esc)) {
			return true
		}
		i++ // skip the escaped character (maybe a backslash)
	}
	return false
}

// walkProperties checks the nesting, the keys and NUL in strings of the
// JSON object b.
func walkProperties(field string, b []byte) error {
	type level struct{ object, wantKey bool }
	var stack []level
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return invalid(field, "cannot be encoded as JSON: %v", err)
		}
		top := len(stack) - 1
		isKey := top >= 0 && stack[top].object && stack[top].wantKey
		if top >= 0 && stack[top].object {
			// A key is followed by its value, a value by the next key.
			stack[top].wantKey = !isKey
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, level{object: t == '{', wantKey: t == '{'})
				if len(stack) > MaxPropertiesDepth {
					return invalid(field, "nests more than %d levels deep (the properties object is level 1)", MaxPropertiesDepth)
				}
			default:
				stack = stack[:top]
			}
		case string:
			if isKey {
				if n := utf8.RuneCountInString(t); n > MaxPropertyKey {
					return invalid(field, "a key is %d characters long; at most %d", n, MaxPropertyKey)
				}
				if strings.IndexByte(t, 0) >= 0 {
					return invalid(field, "a key must not contain U+0000 (NUL): PostgreSQL cannot store it")
				}
			} else if strings.IndexByte(t, 0) >= 0 {
				return invalid(field, "must not contain U+0000 (NUL) in a string: PostgreSQL cannot store it")
			}
		}
	}
}
