package email

import (
	"errors"
	"fmt"
)

// ErrInvalidMessage is wrapped by every error Send returns for a message it
// refused to send before talking to the server: a bad address, a line break
// in a header field, marketing mail without an unsubscribe link, and so on.
// Such errors are also *PermanentError: retrying cannot help.
var ErrInvalidMessage = errors.New("invalid message")

// ErrInvalidConfig is wrapped by the errors NewSender returns.
var ErrInvalidConfig = errors.New("invalid SMTP configuration")

// ErrClosed is returned by Send after Close was called.
var ErrClosed = errors.New("email: sender is closed")

// PermanentError says a message can never be delivered as it is: the SMTP
// server answered with a 5xx reply (unknown mailbox, rejected content...) or
// the message was refused locally (see ErrInvalidMessage). Callers must not
// retry; in a Temporal activity, wrap it as a non-retryable application
// error. Every other error Send returns (4xx replies, network failures,
// timeouts, a cancelled context) is temporary and may be retried. So are
// 530/535 (authentication required/failed): they are about our
// credentials, not the message, and must not drop mail while the
// configuration gets fixed.
type PermanentError struct {
	// Code is the SMTP reply code (500-599), or 0 when the message was
	// refused before it reached the server.
	Code int
	// EnhancedCode is the RFC 3463 enhanced status code (e.g. "5.1.1") when
	// the server sent one.
	EnhancedCode string
	// Field names the offending Message field for locally refused messages
	// ("To", "ToName", "Subject", "Headers[X-Journey-Step]", ...).
	Field string
	// Recipient says the server refused the recipient address (a 5xx
	// reply to RCPT TO, or an RFC 3463 code 5.1.x: bad mailbox or
	// domain): a hard bounce, the address will never take mail.
	Recipient bool
	// Err is the underlying error.
	Err error
}

func (e *PermanentError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("email: permanent SMTP failure (%d): %v", e.Code, e.Err)
	}
	return "email: " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or an error it wraps) is a
// *PermanentError, i.e. whether retrying the send is pointless.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// IsHardBounce reports whether err is a permanent refusal of the
// recipient address itself (see PermanentError.Recipient), as opposed to a
// refused message (content, size) or a message refused locally.
func IsHardBounce(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe) && pe.Recipient
}

// invalid builds the error for a message refused before sending.
func invalid(field, format string, args ...any) error {
	return &PermanentError{
		Field: field,
		Err:   fmt.Errorf("%w: %s %s", ErrInvalidMessage, field, fmt.Sprintf(format, args...)),
	}
}
