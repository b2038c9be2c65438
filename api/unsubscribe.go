package api

import (
	"context"
	"errors"
	"html/template"
	"net/http"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/workflows"
)

// The one-click unsubscribe endpoints (RFC 8058). Links in emails are
// {PUBLIC_BASE_URL}/v1/unsubscribe?c={customer}&t={token} (see
// email.Signer.UnsubscribeURL) and the List-Unsubscribe-Post header makes
// mail clients POST "List-Unsubscribe=One-Click" to the same URL. They are
// not HMAC-authenticated: the token, an HMAC of the customer ID, is the
// authentication.

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; color: #222; }
button { font-size: 1rem; padding: .6rem 1.2rem; cursor: pointer; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .Form}}
<form method="post" action="">
<input type="hidden" name="c" value="{{.CustomerID}}">
<input type="hidden" name="t" value="{{.Token}}">
<button type="submit">Unsubscribe</button>
</form>
{{- end}}
</body>
</html>
`))

type page struct {
	Title, Message    string
	Form              bool
	CustomerID, Token string
}

func writePage(w http.ResponseWriter, status int, p page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// The URL carries the token: do not hand it to other sites.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = pageTemplate.Execute(w, p)
}

var (
	pageIncomplete = page{Title: "Incomplete link", Message: "This unsubscribe link is incomplete. Please use the full link from the email."}
	pageForbidden  = page{Title: "Invalid link", Message: "This unsubscribe link is not valid. Please use the link from the most recent email you received."}
	pageBadID      = page{Title: "Invalid link", Message: "This unsubscribe link does not name a valid customer."}
	pageDone       = page{Title: "You are unsubscribed", Message: "You will not receive any more marketing email from us. Service messages about your account may still be sent."}
	pageTooLarge   = page{Title: "Request too large", Message: "The request was too large."}
)

// getUnsubscribe: GET /v1/unsubscribe?c=..&t=.. shows the confirmation
// page. It changes nothing (link scanners and prefetchers GET links).
func (s *server) getUnsubscribe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, t := q.Get("c"), q.Get("t")
	if c == "" || t == "" {
		writePage(w, http.StatusBadRequest, pageIncomplete)
		return
	}
	if !s.signer.Verify(c, t) {
		writePage(w, http.StatusForbidden, pageForbidden)
		return
	}
	writePage(w, http.StatusOK, page{
		Title:   "Unsubscribe",
		Message: "Do you want to stop receiving marketing email from us?",
		Form:    true, CustomerID: c, Token: t,
	})
}

// postUnsubscribe: POST /v1/unsubscribe?c=..&t=.. (body
// "List-Unsubscribe=One-Click" from a mail client, or the confirmation
// form). The suppression is written to the CRM first, so that a send in
// flight is blocked at once; then the journey gets an unsubscribe event
// (id "unsubscribe-<customer>", so repeats are deduplicated) and ends.
func (s *server) postUnsubscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	if err := r.ParseMultipartForm(MaxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writePage(w, http.StatusRequestEntityTooLarge, pageTooLarge)
			return
		}
		// An unreadable body does not matter: the link's query is what
		// counts.
	}
	q := r.URL.Query()
	c, t := q.Get("c"), q.Get("t")
	if c == "" {
		c = r.PostFormValue("c")
	}
	if t == "" {
		t = r.PostFormValue("t")
	}
	if c == "" || t == "" {
		writePage(w, http.StatusBadRequest, pageIncomplete)
		return
	}
	if !s.signer.Verify(c, t) {
		writePage(w, http.StatusForbidden, pageForbidden)
		return
	}
	if workflows.ValidateCustomerID(c) != nil {
		writePage(w, http.StatusBadRequest, pageBadID)
		return
	}
	source := "confirmation_page"
	if r.PostFormValue("List-Unsubscribe") == "One-Click" {
		source = "one_click"
	}
	ctx, cancel := s.temporalContext(r)
	defer cancel()

	suppressed, erased, crmErr := s.suppress(ctx, c)
	if crmErr != nil {
		// The CRM is away: the journey's own suppression (its CRM writes
		// wait for the database) and its cancelling of pending sends still
		// stop the mail, if a journey takes the event.
		s.log.WarnContext(r.Context(), "unsubscribe: CRM suppression failed; relying on the journey", "customer_id", c, "error", crmErr)
	}
	if erased {
		// The customer's data is gone and the journey ended; there is
		// nothing left to mail. Do not start a journey by signalling.
		writePage(w, http.StatusOK, pageDone)
		return
	}
	ev := workflows.Event{
		ID: "unsubscribe-" + c, Type: "unsubscribe", At: s.now(),
		Properties: map[string]any{"source": source},
	}
	err := s.starter.Events(ctx, c, ev)
	if errors.Is(err, workflows.ErrJourneyEnded) && crmErr == nil {
		// Unsubscribed before (a second click), or the journey ended
		// otherwise: the CRM suppression above is what keeps mail away.
		err = nil
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "unsubscribe: event not accepted by Temporal", "customer_id", c, "suppressed", suppressed, "error", err)
		s.setRetryAfter(w)
		msg := "We could not process your request right now. Please try again in a minute."
		if suppressed {
			msg = "Your address is on our do-not-mail list, so no more marketing email will be sent. We could not finish everything yet: please try again in a minute to confirm."
		}
		writePage(w, http.StatusServiceUnavailable, page{Title: "Please try again", Message: msg})
		return
	}
	s.log.InfoContext(r.Context(), "unsubscribed", "customer_id", c, "source", source, "suppressed_in_crm", suppressed)
	writePage(w, http.StatusOK, pageDone)
}

// suppress puts the customer's address on the CRM suppression list. A
// customer the CRM does not know yet (the journey has not stored the
// signup) is not an error: the journey suppresses the address itself when
// it handles the unsubscribe event.
func (s *server) suppress(ctx context.Context, customerID string) (suppressed, erased bool, err error) {
	if s.crm == nil {
		return false, false, errors.New("no CRM store configured")
	}
	contact, err := s.crm.GetContact(ctx, customerID)
	if errors.Is(err, crm.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	if contact.Erased() {
		return false, true, nil
	}
	if contact.Email == "" {
		return false, false, nil
	}
	if err := s.crm.Suppress(ctx, contact.Email, customerID, customer.ReasonUnsubscribed); err != nil {
		return false, false, err
	}
	return true, false, nil
}
