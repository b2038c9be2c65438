package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/lifecycle/crm"
	"github.com/acme/lifecycle/email"
	"github.com/acme/lifecycle/internal/testenv"
	"github.com/acme/lifecycle/workflows"
)

// The product promise checked here: whatever the API answers 202 is stored
// and can be sent. For any body the API accepts, (a) the CRM stores it in
// the real PostgreSQL and reads it back equal, (b) the mailer builds a
// message to that address with that name, and (c) the journey's own
// validation accepts it. A rejected body must be a 400, never a 5xx.
//
// Seeds run under plain `go test`; scripts/test.sh fuzzes each target for
// a few seconds (go test ./api -run '^$' -fuzz '^FuzzSignup$').

// fuzzEnv is set up once per fuzz run (once per fuzzing worker process).
type fuzzEnv struct {
	srv      *server
	temporal *fakeTemporal
	store    *crm.Store
	mail     *email.Sender
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := crm.Open(ctx, testenv.NewDatabase(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	// Never dialled: Render builds and writes the message in memory.
	mailer, err := email.NewSender(email.Config{Host: "127.0.0.1", Port: 9, TLSMode: email.TLSNone,
		From: "hello@lifecycle.example", FromName: "Lifecycle"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = mailer.Close() })
	ft := newFakeTemporal()
	srv := newServer(Options{
		Starter: workflows.Starter{Client: ft, TaskQueue: "tq", CampaignID: "saas-lifecycle"},
		Signer:  email.NewSigner(testUnsubSecret),
		Secret:  testSecret,
	})
	return &fuzzEnv{srv: srv, temporal: ft, store: store, mail: mailer}
}

// post calls a handler as it runs after authentication (the fuzz is about
// the body) and returns the answer and the signals it sent.
func (e *fuzzEnv) post(handler http.HandlerFunc, body []byte) (*httptest.ResponseRecorder, []signal) {
	e.temporal.mu.Lock()
	e.temporal.signals, e.temporal.running = nil, map[string]bool{}
	e.temporal.mu.Unlock()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler(rec, req)
	return rec, e.temporal.sent()
}

// jsonString writes s as a JSON string, escaping only what JSON requires,
// so that invalid UTF-8 and other raw bytes reach the API as sent.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := range len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func checkStatus(t *testing.T, rec *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	if rec.Code != http.StatusAccepted && rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d for %.300q: %s", rec.Code, body, rec.Body.String())
	}
	if rec.Code == http.StatusBadRequest && !strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("a 400 without an error: %s", rec.Body.String())
	}
}

type signupSeed struct {
	customerID, email, first, last, company, role string
	size                                          int64
	zone, lead, owner                             string
}

func signupSeeds() []signupSeed {
	ok := signupSeed{"c-1042", "ada@engines.example", "Ada", "Lovelace", "Engines Ltd", "cto", 1500,
		"Europe/Berlin", "referral", "sales@acme.example"}
	with := func(mod func(*signupSeed)) signupSeed { s := ok; mod(&s); return s }
	return []signupSeed{
		ok,
		{customerID: "c-1", email: "a@b.example"},
		with(func(s *signupSeed) {
			s.first, s.last, s.company = "Zoë", "Ångström-O'Brien", `Émile "Les Bières" (Paris), <SARL>`
		}),
		with(func(s *signupSeed) { s.first, s.company = "李小龍", "株式会社 エンジン" }),
		with(func(s *signupSeed) { s.first = "=?utf-8?q?abc?=" }),
		with(func(s *signupSeed) { s.first = "Ada\x00" }),
		with(func(s *signupSeed) { s.company = "Engines\x00Ltd" }),
		with(func(s *signupSeed) { s.first = "A\x01da" }),
		with(func(s *signupSeed) { s.first = "\x1b[31mAda" }),
		with(func(s *signupSeed) { s.first = "Ada\xff" }),
		with(func(s *signupSeed) { s.size = 3_000_000_000 }),
		with(func(s *signupSeed) { s.first = strings.Repeat("A", 60<<10) }),
		with(func(s *signupSeed) {
			s.first, s.last, s.company = strings.Repeat("Ä", 100), strings.Repeat("B", 100), strings.Repeat("C", 200)
		}),
		with(func(s *signupSeed) { s.email = strings.Repeat("l", 5000) + "@engines.example" }),
		with(func(s *signupSeed) { s.email = strings.Repeat("l", 64) + "@" + strings.Repeat("d", 180) + ".example" }),
		with(func(s *signupSeed) { s.owner = "Sales <sales@acme.example>" }),
		with(func(s *signupSeed) { s.email, s.owner = "jürgen@engines.example", "a@[192.0.2.1]" }),
		with(func(s *signupSeed) { s.zone, s.lead = "Local", "billboard" }),
	}
}

func FuzzSignup(f *testing.F) {
	for _, s := range signupSeeds() {
		f.Add(s.customerID, s.email, s.first, s.last, s.company, s.role, s.size, s.zone, s.lead, s.owner)
	}
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, customerID, addr, first, last, company, role string, size int64, zone, lead, owner string) {
		body := fmt.Sprintf(`{"customer_id":%s,"email":%s,"first_name":%s,"last_name":%s,"company":%s,"role":%s,"company_size":%s,"time_zone":%s,"lead_source":%s,"owner_email":%s}`,
			jsonString(customerID), jsonString(addr), jsonString(first), jsonString(last), jsonString(company),
			jsonString(role), strconv.FormatInt(size, 10), jsonString(zone), jsonString(lead), jsonString(owner))
		rec, sent := env.post(env.srv.postSignup, []byte(body))
		checkStatus(t, rec, []byte(body))
		if rec.Code != http.StatusAccepted {
			return
		}
		if len(sent) != 1 {
			t.Fatalf("202 with %d signals", len(sent))
		}
		in, ok := sent[0].Arg.(workflows.Signup)
		if !ok {
			t.Fatalf("signal argument is %T", sent[0].Arg)
		}
		// (c) The journey checks signals with the same rule.
		if err := in.Validate(); err != nil {
			t.Fatalf("the API accepted a signup the journey refuses: %v", err)
		}
		// (a) The CRM stores it and reads it back equal.
		ctx := t.Context()
		want := crm.Contact{CustomerID: in.CustomerID, Email: in.Email, FirstName: in.FirstName, LastName: in.LastName,
			Company: in.Company, Role: in.Role, CompanySize: in.CompanySize, TimeZone: in.TimeZone,
			LeadSource: in.LeadSource, OwnerEmail: in.OwnerEmail, Consent: true}
		if err := env.store.UpsertContact(ctx, want); err != nil {
			t.Fatalf("the API accepted a signup the CRM refuses: %v", err)
		}
		got, err := env.store.GetContact(ctx, in.CustomerID)
		if err != nil {
			t.Fatal(err)
		}
		got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("the CRM read back\n%+v\nwant\n%+v", got, want)
		}
		// (b) The mailer builds mail to the customer (named as the journey
		// names them) and to the sales owner.
		checkMail(t, env.mail, in.Email, displayName(in))
		if in.OwnerEmail != "" {
			checkMail(t, env.mail, in.OwnerEmail, "")
		}
	})
}

// displayName is how the journey addresses a customer: "First Last
// (Company)", or the customer id without a name.
func displayName(s workflows.Signup) string {
	name := strings.TrimSpace(s.FirstName + " " + s.LastName)
	if name == "" {
		name = s.CustomerID
	}
	if s.Company != "" {
		name += " (" + s.Company + ")"
	}
	return name
}

// checkMail renders a message to addr and name and reads its To header
// back. Header folding may turn a run of spaces into one (go-mail folds
// at spaces, readers unfold to one), so names compare word by word.
func checkMail(t *testing.T, mailer *email.Sender, addr, name string) {
	t.Helper()
	raw, err := mailer.Render(email.Message{MessageID: email.MessageIDFor("fuzz", "hello@lifecycle.example"),
		To: addr, ToName: name, Subject: "Welcome", Text: "Hello", Category: email.CategoryTransactional})
	if err != nil {
		t.Fatalf("the API accepted what the mailer refuses: %v", err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("rendered message does not parse: %v\n%.2000s", err, raw)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 {
		t.Fatalf("To header %q does not parse to one address: %v", msg.Header.Get("To"), err)
	}
	if to[0].Address != addr || !slices.Equal(strings.Fields(to[0].Name), strings.Fields(name)) {
		t.Fatalf("To header %q reads back as %q <%s>; want %q <%s>", msg.Header.Get("To"), to[0].Name, to[0].Address, name, addr)
	}
}

func FuzzEvent(f *testing.F) {
	for _, s := range []struct{ customerID, id, typ, props string }{
		{"c-1042", "crm-88123", "pricing_viewed", `{"page": "/pricing"}`},
		{"c-1", "e1", "login", ``},
		{"c-1", "e2", "webinar_rsvp", `{"a": [1, 2.5, true, null, {"b": "\u2028é😀"}], "n": -0, "big": 12345678901234567890}`},
		{"c-1", "e\x00", "login", `{}`},
		{"c-1", "e3", "log\x00in", `{}`},
		{"c-1", "e4", "login", `{"page": "/x\u0000"}`},
		{"c-1", "e5", "login", `{"k\u0000": 1}`},
		{"c-1", "e6", "login", "{\"bad\": \"\xff\"}"},
		{"c-1", "e7", "login", `{"a": {"b": {"c": {"d": {"e": 1}}}}}`},
		{"c-1", "e8", "login", `{"a": [[[[1]]]]}`},
		{"c-1", "e9", "Order Completed", `{}`},
		{"c-1", " e10", "login", `{}`},
		{"c-1", strings.Repeat("i", 200), strings.Repeat("t", 64), `{"` + strings.Repeat("k", 100) + `": "` + strings.Repeat("v", 8000) + `"}`},
		{"c 1", "e11", "login", `[]`},
	} {
		f.Add(s.customerID, s.id, s.typ, s.props)
	}
	env := newFuzzEnv(f)
	occurred := time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, customerID, id, typ, props string) {
		body := fmt.Sprintf(`{"customer_id":%s,"id":%s,"type":%s`, jsonString(customerID), jsonString(id), jsonString(typ))
		if props != "" {
			body += `,"properties":` + props
		}
		body += "}"
		rec, sent := env.post(env.srv.postEvents, []byte(body))
		checkStatus(t, rec, []byte(body))
		if rec.Code != http.StatusAccepted {
			return
		}
		if len(sent) != 1 {
			t.Fatalf("202 with %d signals", len(sent))
		}
		ev, ok := sent[0].Arg.(workflows.Event)
		if !ok {
			t.Fatalf("signal argument is %T", sent[0].Arg)
		}
		// (c) The journey checks events with the same rule.
		if err := errors.Join(workflows.ValidateCustomerID(customerID), ev.Validate()); err != nil {
			t.Fatalf("the API accepted an event the journey refuses: %v", err)
		}
		// (a) The CRM stores it and reads it back equal. Ids repeat across
		// inputs: the previous copy goes first, or it would be a duplicate.
		ctx := t.Context()
		if _, err := env.store.Pool().Exec(ctx, `DELETE FROM events WHERE customer_id = $1 AND event_id = $2`, customerID, ev.ID); err != nil {
			t.Fatal(err)
		}
		fresh, err := env.store.RecordNewEvents(ctx, "", []crm.Event{{ID: ev.ID, CustomerID: customerID, Type: ev.Type,
			OccurredAt: occurred, Properties: ev.Properties}})
		if err != nil {
			t.Fatalf("the API accepted an event the CRM refuses: %v", err)
		}
		if !slices.Equal(fresh, []string{ev.ID}) {
			t.Fatalf("the CRM recorded %q, want [%q]", fresh, ev.ID)
		}
		stored, err := env.store.EventsOf(ctx, customerID)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(stored, func(e crm.Event) bool { return e.ID == ev.ID })
		if i < 0 {
			t.Fatalf("event %q not read back", ev.ID)
		}
		got := stored[i]
		if got.Type != ev.Type || !got.OccurredAt.Equal(occurred) {
			t.Fatalf("read back type %q at %s, want %q at %s", got.Type, got.OccurredAt, ev.Type, occurred)
		}
		if len(got.Properties) != 0 || len(ev.Properties) != 0 {
			if !reflect.DeepEqual(got.Properties, ev.Properties) {
				t.Fatalf("properties read back as\n%#v\nwant\n%#v", got.Properties, ev.Properties)
			}
		}
	})
}
