package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acme/lifecycle/customer"
)

// ErrorResponse is the body of every JSON error answer.
type ErrorResponse struct {
	// Error says what is wrong, for a human.
	Error string `json:"error"`
	// Field is the JSON name of the offending field, when one is to blame.
	Field string `json:"field,omitempty"`
	// Errors lists every problem when there is more than one; the first
	// is repeated in Error and Field.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one problem with one field.
type FieldError struct {
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, e ErrorResponse) {
	writeJSON(w, status, e)
}

// unavailable answers 503 with Retry-After: the request had no effect (or,
// for a batch, not all of it) and must be retried.
func (s *server) unavailable(w http.ResponseWriter, msg string) {
	s.setRetryAfter(w)
	writeError(w, http.StatusServiceUnavailable, ErrorResponse{Error: msg})
}

// requireJSON checks the Content-Type of a request with a JSON body.
func requireJSON(r *http.Request) *ErrorResponse {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return &ErrorResponse{Error: fmt.Sprintf("Content-Type must be application/json (got %s)", ct)}
	}
	return nil
}

// readJSON reads a JSON request body (already read and limited by
// authenticated) into v, a pointer to a struct, as decodeJSON does; when it
// cannot, it answers 415 or 400 and reports false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if e := requireJSON(r); e != nil {
		writeError(w, http.StatusUnsupportedMediaType, *e)
		return false
	}
	body, _ := io.ReadAll(r.Body)
	if e := decodeJSON(body, v); e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return false
	}
	return true
}

// decodeJSON decodes body into v, which must be a pointer to a struct,
// rejecting invalid UTF-8, unknown fields and trailing data. The error
// names the field when one is to blame.
func decodeJSON(body []byte, v any) *ErrorResponse {
	if e := checkUTF8(body); e != nil {
		return e
	}
	return decodeJSONShape(body, v)
}

// decodeJSONShape is decodeJSON without the UTF-8 check, for a batch
// whose events are checked one by one.
func decodeJSONShape(body []byte, v any) *ErrorResponse {
	if len(bytes.TrimSpace(body)) == 0 {
		return &ErrorResponse{Error: "request body is empty: expected a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, body)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &ErrorResponse{Error: fmt.Sprintf("malformed JSON: unexpected data after the JSON object at byte %d", dec.InputOffset())}
	}
	return nil
}

func describeJSONError(err error, body []byte) *ErrorResponse {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tpe *time.ParseError
	switch {
	case errors.As(err, &syn):
		line, col := position(body, syn.Offset)
		return &ErrorResponse{Error: fmt.Sprintf("malformed JSON at line %d, column %d: %s", line, col, syn.Error())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &ErrorResponse{Error: "malformed JSON: the body ends before the JSON value is complete"}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &ErrorResponse{Error: fmt.Sprintf("request body must be a JSON object, not %s", jsonKind(typ.Value))}
		}
		return &ErrorResponse{
			Field: typ.Field,
			Error: fmt.Sprintf("%s: expected %s, got %s", typ.Field, jsonTypeName(typ.Type), typ.Value),
		}
	case errors.As(err, &tpe), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		// The only timestamps in request bodies are the "at" fields;
		// encoding/json does not name the field of a failing
		// UnmarshalJSON.
		return &ErrorResponse{Field: "at", Error: `at: must be an RFC 3339 timestamp string, like "2025-03-01T09:30:00Z"`}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &ErrorResponse{Field: name, Error: fmt.Sprintf("unknown field %q", name)}
	}
	return &ErrorResponse{Error: "malformed JSON: " + err.Error()}
}

// checkUTF8 refuses a body that is not UTF-8 (RFC 8259), naming the
// top-level field that holds the first bad byte: encoding/json would
// quietly turn it into U+FFFD, so the journey and the CRM would get
// another text than the one sent.
func checkUTF8(body []byte) *ErrorResponse {
	if utf8.Valid(body) {
		return nil
	}
	bad := 0
	for rest := body; len(rest) > 0; {
		r, size := utf8.DecodeRune(rest)
		if r == utf8.RuneError && size == 1 {
			break
		}
		bad += size
		rest = rest[size:]
	}
	if field := topLevelFieldAt(body, int64(bad)); field != "" {
		return &ErrorResponse{Field: field, Error: field + ": is not valid UTF-8"}
	}
	return &ErrorResponse{Error: fmt.Sprintf("request body is not valid UTF-8 (byte %d)", bad)}
}

// topLevelFieldAt returns the name of the top-level field of the JSON
// object body whose value covers offset ("" when none does, or body is
// not an object).
func topLevelFieldAt(body []byte, offset int64) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	depth, field, wantKey := 0, "", false
	for first := true; ; first = false {
		tok, err := dec.Token()
		if err != nil || first && tok != json.Delim('{') {
			return ""
		}
		d, isDelim := tok.(json.Delim)
		switch {
		case isDelim && (d == '{' || d == '['):
			depth++
		case isDelim:
			depth--
		}
		if depth == 1 {
			if s, ok := tok.(string); ok && wantKey {
				field = s
			}
			// After '{' or a value comes a key, after a key its value.
			wantKey = isDelim || !wantKey
		}
		if dec.InputOffset() > offset {
			if strings.ContainsRune(field, utf8.RuneError) {
				return "" // the bad byte is in the name itself
			}
			return field
		}
	}
}

// position turns a byte offset into a 1-based line and column.
func position(body []byte, offset int64) (line, col int) {
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	before := body[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, max(col, 1)
}

// jsonKind trims UnmarshalTypeError.Value ("number 1.5") to its kind.
func jsonKind(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	switch kind {
	case "array", "object":
		return "an " + kind
	}
	return "a " + kind
}

func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	if t == reflect.TypeOf(time.Time{}) {
		return "an RFC 3339 timestamp string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a " + t.String()
}

// validationError turns the (possibly joined) error of a Validate method
// into an ErrorResponse. The rules of package customer return
// *customer.FieldError, whose message starts with the JSON name of the
// field ("email: ..."); fields lists the names that may be blamed, so that
// a message starting with another word is not mistaken for a field.
func validationError(err error, fields map[string]bool) *ErrorResponse {
	out := &ErrorResponse{}
	for _, e := range flatten(err) {
		fe := FieldError{Field: fieldOf(e.Error(), fields), Error: e.Error()}
		if cf := (*customer.FieldError)(nil); errors.As(e, &cf) && fields[cf.Field] {
			fe.Field = cf.Field
		}
		if out.Error == "" {
			out.Error, out.Field = fe.Error, fe.Field
		}
		out.Errors = append(out.Errors, fe)
	}
	if len(out.Errors) < 2 {
		out.Errors = nil
	}
	return out
}

// flatten lists the errors inside (nested) errors.Join results.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

func fieldOf(msg string, fields map[string]bool) string {
	end := strings.IndexAny(msg, " :")
	if end < 0 {
		return ""
	}
	if name := msg[:end]; fields[name] {
		return name
	}
	return ""
}

// jsonFields returns the JSON names of a struct type's fields.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v)
	out := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}
