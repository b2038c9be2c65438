// Package mailpit is a small client for the HTTP API of Mailpit
// (https://mailpit.axllent.org/docs/api-v1/), the SMTP sink of the local
// stack. Tests use it to check what was sent; the demo uses it to print
// counts.
//
// Tests share one Mailpit server across packages: send to unique random
// recipients and search for them; never call DeleteAll from a test.
package mailpit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned for a message ID Mailpit does not know.
var ErrNotFound = errors.New("mailpit: message not found")

// pageSize is how many summaries one search request asks for.
const pageSize = 200

// Client talks to one Mailpit server.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the Mailpit at baseURL (e.g.
// "http://127.0.0.1:8025"; a web root like "http://host/mailpit" works too).
func New(baseURL string) *Client {
	return &Client{
		base: strings.TrimRight(baseURL, "/"),
		http: &http.Client{Timeout: 30 * time.Second},
	}
}

// Address is a mailbox with an optional display name.
type Address struct {
	Name    string
	Address string
}

// Summary is one message in a search result.
type Summary struct {
	// ID is Mailpit's database ID, for Message and Headers.
	ID string
	// MessageID is the Message-ID header without angle brackets.
	MessageID string
	From      Address
	To        []Address
	Cc        []Address
	Bcc       []Address
	Subject   string
	// Created is when Mailpit received the message.
	Created time.Time
	// Username is the SMTP AUTH user the message was sent with, if any.
	Username string
	Tags     []string
	Size     uint64
	Snippet  string
}

// ListUnsubscribe is Mailpit's reading of the List-Unsubscribe headers.
type ListUnsubscribe struct {
	// Header is the List-Unsubscribe value.
	Header string
	// Links are the links found in it.
	Links []string
	// Errors lists what Mailpit found wrong with the header, if anything.
	Errors string
	// HeaderPost is the List-Unsubscribe-Post value.
	HeaderPost string
}

// Message is one message with its bodies.
type Message struct {
	ID string
	// MessageID is the Message-ID header without angle brackets.
	MessageID       string
	From            Address
	To              []Address
	Cc              []Address
	Bcc             []Address
	ReplyTo         []Address
	Subject         string
	Date            time.Time
	Text            string
	HTML            string
	ListUnsubscribe ListUnsubscribe
	// Username is the SMTP AUTH user the message was sent with, if any.
	Username string
	Tags     []string
	Size     uint64
}

type searchResult struct {
	Total         int       `json:"total"`
	MessagesCount int       `json:"messages_count"`
	Start         int       `json:"start"`
	Messages      []Summary `json:"messages"`
}

// getJSON GETs path (relative to the API root, with its query) into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("mailpit: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("GET %s: %w", path, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("mailpit: GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("mailpit: GET %s: decode: %w", path, err)
	}
	return nil
}

func (c *Client) searchPage(ctx context.Context, query string, start, limit int) (searchResult, error) {
	q := url.Values{
		"query": {query},
		"start": {strconv.Itoa(start)},
		"limit": {strconv.Itoa(limit)},
	}
	var res searchResult
	err := c.getJSON(ctx, "/api/v1/search?"+q.Encode(), &res)
	return res, err
}

// Search returns every message matching query, newest first, reading all
// result pages. The query uses Mailpit's search syntax
// (https://mailpit.axllent.org/docs/usage/search-filters/), e.g.
// `to:jane@example.com`, `subject:"Welcome aboard"`, `message-id:abc@host`.
// Mailpit matches these as substrings, case-insensitively; filter the
// result when an exact match matters.
func (c *Client) Search(ctx context.Context, query string) ([]Summary, error) {
	if strings.TrimSpace(query) == "" {
		return nil, errors.New("mailpit: empty search query")
	}
	var (
		all  []Summary
		seen = map[string]bool{}
	)
	for start := 0; ; {
		res, err := c.searchPage(ctx, query, start, pageSize)
		if err != nil {
			return nil, err
		}
		for _, s := range res.Messages {
			// Messages arriving between pages shift the offsets: skip
			// what an earlier page already returned.
			if !seen[s.ID] {
				seen[s.ID] = true
				all = append(all, s)
			}
		}
		start += len(res.Messages)
		if len(res.Messages) == 0 || start >= res.MessagesCount {
			return all, nil
		}
	}
}

// WaitFor polls Search until at least n messages match query, and returns
// them; it gives up when ctx is done, returning what it found with the
// context's error. For mail sent asynchronously (workflows, activities).
func (c *Client) WaitFor(ctx context.Context, query string, n int) ([]Summary, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last []Summary
	for {
		found, err := c.Search(ctx, query)
		if err == nil {
			if len(found) >= n {
				return found, nil
			}
			last = found
		} else if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("mailpit: %d of %d messages matching %q: %w", len(last), n, query, ctx.Err())
		case <-tick.C:
		}
	}
}

// Message returns the message with Mailpit's database ID id (from Summary.ID).
// Reading a message marks it read in Mailpit.
func (c *Client) Message(ctx context.Context, id string) (Message, error) {
	var m Message
	err := c.getJSON(ctx, "/api/v1/message/"+url.PathEscape(id), &m)
	return m, err
}

// Headers returns all headers of the message with database ID id, keyed by
// canonical name (textproto.CanonicalMIMEHeaderKey: "Message-Id",
// "List-Unsubscribe-Post", "X-Journey-Step"); http.Header(h).Get(name)
// looks names up in any case.
func (c *Client) Headers(ctx context.Context, id string) (map[string][]string, error) {
	var raw map[string][]string
	if err := c.getJSON(ctx, "/api/v1/message/"+url.PathEscape(id)+"/headers", &raw); err != nil {
		return nil, err
	}
	h := make(map[string][]string, len(raw))
	for k, v := range raw {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		h[ck] = append(h[ck], v...)
	}
	return h, nil
}

// CountByMessageID returns how many stored messages carry exactly this
// Message-ID (with or without angle brackets). Idempotent sends must give 1.
func (c *Client) CountByMessageID(ctx context.Context, messageID string) (int, error) {
	id := strings.TrimSpace(messageID)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if id == "" {
		return 0, errors.New("mailpit: empty Message-ID")
	}
	// Mailpit turns quotes, brackets, commas, semicolons and parentheses
	// in a search term into spaces; search for the longest part without
	// them and compare exactly below.
	term := ""
	for _, part := range strings.FieldsFunc(id, func(r rune) bool {
		return strings.ContainsRune("\"<>,;() \t", r)
	}) {
		if len(part) > len(term) {
			term = part
		}
	}
	found, err := c.Search(ctx, `message-id:"`+term+`"`)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range found {
		// The search matches substrings; count exact matches only.
		if s.MessageID == id {
			n++
		}
	}
	return n, nil
}

// Total returns the number of messages stored in Mailpit.
func (c *Client) Total(ctx context.Context) (int, error) {
	var res searchResult
	if err := c.getJSON(ctx, "/api/v1/messages?limit=1", &res); err != nil {
		return 0, err
	}
	return res.Total, nil
}

// DeleteAll deletes every message in Mailpit. Only for resetting the demo:
// tests share the server and must not call it.
func (c *Client) DeleteAll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/api/v1/messages", strings.NewReader("{}"))
	if err != nil {
		return fmt.Errorf("mailpit: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: DELETE /api/v1/messages: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("mailpit: DELETE /api/v1/messages: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
