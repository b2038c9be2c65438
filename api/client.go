package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/acme/lifecycle/erasure"
	"github.com/acme/lifecycle/workflows"
)

// Client is a small Go client of the API: it signs every request (each
// attempt afresh) and decodes answers. The zero HTTP uses
// http.DefaultClient; the zero Now uses time.Now.
type Client struct {
	// BaseURL is where the API is, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Secret is the shared API secret.
	Secret []byte
	HTTP   *http.Client
	Now    func() time.Time
}

// ResponseError is an answer with a status other than the expected one.
type ResponseError struct {
	StatusCode int
	// RetryAfter is the Retry-After of a 503 (0 when absent).
	RetryAfter time.Duration
	// Message and Field are the answer's "error" and "field".
	Message string
	Field   string
	// Body is the raw answer (the EventsResponse of a batch answer).
	Body []byte
}

func (e *ResponseError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.TrimSpace(string(e.Body))
	}
	if e.Field != "" {
		return fmt.Sprintf("api: %d %s (field %s): %s", e.StatusCode, http.StatusText(e.StatusCode), e.Field, msg)
	}
	return fmt.Sprintf("api: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), msg)
}

// Temporary reports whether retrying the same request may succeed.
func (e *ResponseError) Temporary() bool { return e.StatusCode == http.StatusServiceUnavailable }

// Signup sends a signup; it returns once Temporal accepted it.
func (c *Client) Signup(ctx context.Context, s workflows.Signup) (SignupResponse, error) {
	var out SignupResponse
	err := c.call(ctx, http.MethodPost, "/v1/signups", s, http.StatusAccepted, &out)
	return out, err
}

// Event sends one event.
func (c *Client) Event(ctx context.Context, e Event) (EventsResponse, error) {
	var out EventsResponse
	err := c.call(ctx, http.MethodPost, "/v1/events", e, http.StatusAccepted, &out)
	return out, err
}

// Events sends a batch. The EventsResponse is returned for 202, 207, 400
// (all rejected) and 503 (some failed) answers alike; the error is nil only
// for 202, and a *ResponseError otherwise.
func (c *Client) Events(ctx context.Context, events ...Event) (EventsResponse, error) {
	var out EventsResponse
	err := c.call(ctx, http.MethodPost, "/v1/events", EventBatch{Events: events}, http.StatusAccepted, &out)
	if re, ok := err.(*ResponseError); ok {
		_ = json.Unmarshal(re.Body, &out)
	}
	return out, err
}

// Journey returns the state of a customer's journey.
func (c *Client) Journey(ctx context.Context, customerID string) (workflows.JourneyView, error) {
	var out workflows.JourneyView
	err := c.call(ctx, http.MethodGet, "/v1/customers/"+url.PathEscape(customerID)+"/journey", nil, http.StatusOK, &out)
	return out, err
}

// Do sends a signed request with a raw body (nil for none) and returns the
// answer unread.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	for k, v := range Sign(c.Secret, now(), body) {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return hc.Do(req)
}

func (c *Client) call(ctx context.Context, method, path string, in any, want int, out any) error {
	var body []byte
	ct := ""
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("api: encode request: %w", err)
		}
		ct = "application/json"
	}
	resp, err := c.Do(ctx, method, path, ct, body)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("api: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		re := &ResponseError{StatusCode: resp.StatusCode, Body: raw}
		var er ErrorResponse
		if json.Unmarshal(raw, &er) == nil {
			re.Message, re.Field = er.Error, er.Field
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			re.RetryAfter = time.Duration(secs) * time.Second
		}
		return re
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("api: %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Erase erases a customer (DELETE /v1/customers/{id}); requestedBy goes
// into the audit log ("" is "api").
func (c *Client) Erase(ctx context.Context, customerID, requestedBy string) (erasure.Result, error) {
	var out erasure.Result
	in := EraseRequest{Action: "erase", CustomerID: customerID, RequestedBy: requestedBy}
	err := c.call(ctx, http.MethodDelete, "/v1/customers/"+url.PathEscape(customerID), in, http.StatusOK, &out)
	return out, err
}

// Tags adds and removes tags of a customer (POST /v1/customers/{id}/tags).
func (c *Client) Tags(ctx context.Context, customerID string, add, remove []string) (TagsResponse, error) {
	var out TagsResponse
	err := c.call(ctx, http.MethodPost, "/v1/customers/"+url.PathEscape(customerID)+"/tags",
		TagsRequest{Add: add, Remove: remove}, http.StatusAccepted, &out)
	return out, err
}
