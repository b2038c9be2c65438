package customer_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/customer"
)

// check runs one rule over a table: valid values give nil, invalid ones a
// *FieldError naming the field whose problem contains want.
func check(t *testing.T, rule func(field, v string) error, valid []string, invalid map[string]string) {
	t.Helper()
	for _, v := range valid {
		assert.NoError(t, rule("f", v), "%q", short(v))
	}
	for v, want := range invalid {
		err := rule("f", v)
		var fe *customer.FieldError
		if !assert.True(t, errors.As(err, &fe), "%q: got %v, want a *FieldError", short(v), err) {
			continue
		}
		assert.Equal(t, "f", fe.Field)
		assert.Equal(t, "f: "+fe.Problem, err.Error())
		assert.Contains(t, fe.Problem, want, "%q", short(v))
		assertNotRepeated(t, err, v)
	}
}

// assertNotRepeated: a long or binary value never appears in the message.
func assertNotRepeated(t *testing.T, err error, v string) {
	t.Helper()
	if len(v) > 64 || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f || r == 0xfffd }) {
		assert.NotContains(t, err.Error(), v, "the value is repeated in %q", short(err.Error()))
	}
	assert.LessOrEqual(t, len(err.Error()), 300, "message too long: %q", short(err.Error()))
}

func short(v string) string {
	if len(v) > 80 {
		return v[:80] + "..."
	}
	return v
}

func TestFieldErrorFormat(t *testing.T) {
	err := customer.CheckLeadSource("lead_source", "billboard")
	assert.Equal(t, `lead_source: "billboard": must be one of current_customer, referral, connected, expert, search_ads, cold`, err.Error())
}

func TestText(t *testing.T) {
	rule := func(f, v string) error { return customer.CheckText(f, v, 25) }
	check(t, rule,
		[]string{"", "Ada", "Zoë Ångström", "李小龍", "O'Brien-Smith", "a \"quoted\" (name), <x>", "1234567890123456789012345", "😀👍🏽", "\u200dzwj"},
		map[string]string{
			"Ada\x00":                    "control characters (U+0000 at character 4)",
			"A\x01da":                    "control characters (U+0001",
			"\x1b[31mred":                "control characters (U+001B",
			"tab\there":                  "control characters (U+0009",
			"del\x7f":                    "control characters (U+007F",
			"c1\u0090":                   "control characters (U+0090",
			"Ada\r\nBcc: x":              "line breaks",
			"Ada\nx":                     "line breaks (U+000A",
			"nel\u0085":                  "line breaks (U+0085",
			"ls\u2028":                   "line breaks (U+2028",
			"ps\u2029":                   "line breaks (U+2029",
			"bad\xff\xfe":                "not valid UTF-8",
			"\xc3":                       "not valid UTF-8",
			"12345678901234567890123456": "is 26 characters long; at most 25",
			strings.Repeat("ü", 26):      "is 26 characters long",
		})
}

func TestNamesAndCompany(t *testing.T) {
	check(t, customer.CheckName, []string{"", strings.Repeat("é", customer.MaxName)},
		map[string]string{
			strings.Repeat("a", customer.MaxName+1): "is 101 characters long; at most 100",
			strings.Repeat("x", 60<<10):             "is 61440 characters long; at most 100",
			"Ada\x00":                               "control characters",
			"A\x01":                                 "control characters",
			"\x1b":                                  "control characters",
		})
	check(t, customer.CheckCompany, []string{"", "Analytical Engines Ltd", strings.Repeat("c", customer.MaxCompany)},
		map[string]string{
			strings.Repeat("c", customer.MaxCompany+1): "at most 200",
			"Acme\x00":  "control characters",
			"Acme\nInc": "line breaks",
		})
}

func TestCompanySize(t *testing.T) {
	for _, n := range []int{0, 1, 1500, customer.MaxCompanySize} {
		assert.NoError(t, customer.CheckCompanySize("company_size", n), n)
	}
	for n, want := range map[int]string{
		-1:                          "-1: must not be negative",
		customer.MaxCompanySize + 1: "must be at most 10000000",
		3_000_000_000:               "3000000000: must be at most 10000000",
		math.MaxInt:                 "must be at most",
		math.MinInt:                 "must not be negative",
	} {
		err := customer.CheckCompanySize("company_size", n)
		require.Error(t, err, n)
		assert.True(t, strings.HasPrefix(err.Error(), "company_size: "), err)
		assert.Contains(t, err.Error(), want)
	}
}

func TestCustomerID(t *testing.T) {
	check(t, customer.CheckCustomerID,
		[]string{"c-1042", "a", "cus_1", "A.b:c@d-e_f", strings.Repeat("x", 128)},
		map[string]string{
			"":                       "must not be empty",
			"a b":                    `"a b": must be 1-128 characters of letters, digits and . _ : @ -`,
			"a/b":                    "must be 1-128",
			"ä":                      "must be 1-128",
			"a\x00":                  "must be 1-128",
			" a":                     "must be 1-128",
			strings.Repeat("x", 129): "is 129 bytes long; at most 128",
		})
}

func TestEmail(t *testing.T) {
	local64 := strings.Repeat("l", 64)
	domain := strings.Repeat("d", 63) + "." + strings.Repeat("e", 63) + "." + strings.Repeat("f", 53) + ".example" // 254 in all
	require.Len(t, local64+"@"+domain, 254)
	check(t, customer.CheckEmail,
		[]string{
			"ada@engines.example", "Ada.Lovelace+trial@Engines.Example", "a@b.co",
			"o'brien@x.example", "a!#$%&'*+/=?^_`{|}~-@x.example", "a.b.c@sub-1.x.example",
			local64 + "@" + domain,
		},
		map[string]string{
			"":                                       "must not be empty",
			"ada":                                    `"ada": must be a bare email address (name@domain)`,
			"a@":                                     "must be a bare email address",
			"@acme.example":                          "must be a bare email address",
			"Ada <ada@engines.example>":              "must be a bare email address",
			"<ada@engines.example>":                  "must be a bare email address",
			`"ada"@engines.example`:                  "must be a bare email address",
			`"a b"@engines.example`:                  "must be a bare email address",
			"ada@engines.example (Ada)":              "must be a bare email address",
			"a(x)@engines.example":                   "must be a bare email address",
			"a@b.example, c@d.example":               "must be a bare email address",
			" ada@engines.example":                   "must be a bare email address",
			"ada@engines.example ":                   "must be a bare email address",
			"a..b@x.example":                         "must be a bare email address",
			".a@x.example":                           "must be a bare email address",
			"a@b":                                    "the domain must be a host name",
			"a@localhost":                            "the domain must be a host name",
			"a@[192.0.2.1]":                          "no IP literals",
			"a@b!c.example":                          "the domain must be a host name",
			"a@-b.example":                           "the domain must be a host name",
			"a@b-.example":                           "the domain must be a host name",
			"a@b_c.example":                          "the domain must be a host name",
			"a@b..example":                           "must be a bare email address",
			"a@" + strings.Repeat("d", 64) + ".x":    "the domain must be a host name",
			"jürgen@x.example":                       "must be ASCII: internationalised addresses are not supported",
			"a@bücher.example":                       "internationalised addresses are not supported",
			"a\x00@x.example":                        "control characters (U+0000",
			"a\r\nBcc: v@x.example":                  "control characters (U+000D",
			"a\x7f@x.example":                        "control characters (U+007F",
			"a\xff@x.example":                        "must be ASCII",
			strings.Repeat("l", 65) + "@x.example":   "the part before the @ is 65 characters long; at most 64 (RFC 5321)",
			strings.Repeat("l", 5000) + "@x.example": "is 5010 characters long; at most 254 (RFC 5321)",
			local64 + "@" + domain[:len(domain)-1] + "ee": "is 255 characters long; at most 254",
		})
}

func TestLeadSource(t *testing.T) {
	check(t, customer.CheckLeadSource, append([]string{""}, customer.LeadSources...),
		map[string]string{
			"billboard": `"billboard": must be one of current_customer, referral, connected, expert, search_ads, cold`,
			"Referral":  "must be one of",
			"referral ": "must be one of", //nolint:gocritic // the trailing space is the invalid input
			"x\x00":     "must be one of",
		})
	assert.Equal(t, []string{"current_customer", "referral", "connected", "expert", "search_ads", "cold"}, customer.LeadSources)
}

func TestTimeZone(t *testing.T) {
	check(t, customer.CheckTimeZone,
		[]string{"", "Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+5", "America/Port-au-Prince", "Asia/Kolkata"},
		map[string]string{
			"Local":                 `"Local": depends on the server`,
			"localtime":             "depends on the server",
			"Europe/Berln":          `"Europe/Berln": unknown IANA time zone`,
			"Mars/Olympus_Mons":     "unknown IANA time zone",
			"europe/berlin ":        "unknown IANA time zone", //nolint:gocritic // the trailing space is part of the invalid input
			"Europe":                "unknown IANA time zone",
			"../../etc/passwd":      "unknown IANA time zone",
			"/etc/localtime":        "unknown IANA time zone",
			"right/UTC":             "unknown IANA time zone",
			"posix/Europe/Berlin":   "unknown IANA time zone",
			"Europe/Berlin\x00":     "unknown IANA time zone",
			strings.Repeat("A", 65): "unknown IANA time zone",
		})
}

func TestEventID(t *testing.T) {
	check(t, customer.CheckEventID,
		[]string{"crm-88123", "e", "order 42 / line 3", "ünïcødé-id", strings.Repeat("i", customer.MaxEventID)},
		map[string]string{
			"":                       "must not be empty",
			"   ":                    "must not be empty",
			"e1\x00":                 "control characters (U+0000",
			"e\x1b1":                 "control characters",
			"e1\n":                   "line breaks",
			" e1":                    "must not begin or end with white space",
			"e1\u00a0":               "must not begin or end with white space",
			"e\xff":                  "not valid UTF-8",
			strings.Repeat("i", 201): "is 201 characters long; at most 200",
		})
}

func TestEventType(t *testing.T) {
	check(t, customer.CheckEventType,
		[]string{"login", "pricing_viewed", "webinar_rsvp", "Order.Completed", "Order Completed", "$identify", "hubspot:form-submitted", strings.Repeat("t", customer.MaxEventType)},
		map[string]string{
			"":                      "must not be empty",
			" ":                     "must not be empty",
			"log\x00in":             "must be printable ASCII",
			"\x01login":             "printable ASCII",
			" login":                "must not begin or end with a space",
			"Order  Completed":      "two in a row",
			"login\t":               "printable ASCII",
			"lоgin":                 "printable ASCII", // Cyrillic о
			"a\u00a0b":              "printable ASCII",
			strings.Repeat("t", 65): "is 65 characters long; at most 64",
		})
}

func TestProperties(t *testing.T) {
	obj := func(s string) map[string]any {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(s), &m), s)
		return m
	}
	nest := func(levels int) map[string]any {
		m := map[string]any{"leaf": 1}
		for range levels - 1 {
			m = map[string]any{"n": m}
		}
		return m
	}
	valid := []map[string]any{
		nil, {},
		obj(`{"page": "/pricing", "n": 1.5, "ok": true, "none": null, "list": [1, "a", {"b": []}]}`),
		obj(`{"emoji": "😀", "fffd": "\ufffd", "controls": "a\u0001b\tc\nd", "ls": "\u2028", "backslash": "\\ufffd \\u0000"}`),
		nest(customer.MaxPropertiesDepth),
		obj(`{"a": [[[[1]]]]}`),
		{strings.Repeat("k", customer.MaxPropertyKey): 1},
		{"big": strings.Repeat("x", customer.MaxPropertiesSize-20)},
		{"typed": struct{ A string }{"x"}, "int": 7},
	}
	for i, p := range valid {
		assert.NoError(t, customer.CheckProperties("properties", p), "valid[%d]", i)
	}
	invalid := map[string]struct {
		p    map[string]any
		want string
	}{
		"NUL in a value":        {obj(`{"a": "x\u0000y"}`), "must not contain U+0000 (NUL) in a string"},
		"NUL deep in a value":   {obj(`{"a": [{"b": ["\u0000"]}]}`), "U+0000 (NUL)"},
		"NUL in a key":          {obj(`{"a\u0000": 1}`), "a key must not contain U+0000"},
		"invalid UTF-8 value":   {map[string]any{"a": "x\xffy"}, "invalid UTF-8"},
		"invalid UTF-8 key":     {map[string]any{"k\xc3": 1}, "invalid UTF-8"},
		"invalid UTF-8 in type": {map[string]any{"t": struct{ S string }{"\xfe"}}, "invalid UTF-8"},
		"raw invalid UTF-8":     {map[string]any{"r": json.RawMessage("\"\xff\"")}, "invalid UTF-8"},
		"too deep":              {nest(customer.MaxPropertiesDepth + 1), "nests more than 5 levels deep"},
		"too deep in arrays":    {obj(`{"a": [[[[[1]]]]]}`), "nests more than 5 levels"},
		"long key":              {map[string]any{strings.Repeat("k", customer.MaxPropertyKey+1): 1}, "a key is 101 characters long; at most 100"},
		"too big":               {map[string]any{"big": strings.Repeat("x", customer.MaxPropertiesSize)}, "bytes as JSON; at most 8192"},
		"not JSON: NaN":         {map[string]any{"n": math.NaN()}, "cannot be encoded as JSON"},
		"not JSON: func":        {map[string]any{"f": func() {}}, "cannot be encoded as JSON"},
	}
	for name, c := range invalid {
		err := customer.CheckProperties("events[2].properties", c.p)
		var fe *customer.FieldError
		if assert.True(t, errors.As(err, &fe), "%s: got %v", name, err) {
			assert.Equal(t, "events[2].properties", fe.Field, name)
			assert.Contains(t, fe.Problem, c.want, name)
		}
	}
}

func TestProfileListsEveryBadField(t *testing.T) {
	good := customer.Profile{CustomerID: "c-1", Email: "ada@engines.example", FirstName: "Ada", LastName: "Lovelace",
		Company: "Engines", Role: "cto", CompanySize: 1500, TimeZone: "Europe/Berlin", LeadSource: "referral", OwnerEmail: "sales@acme.example"}
	require.NoError(t, good.Validate())
	require.NoError(t, customer.Profile{CustomerID: "c-1", Email: "ada@engines.example"}.Validate(), "optional fields may be empty")

	bad := customer.Profile{CustomerID: "c 1", Email: "ada", FirstName: "A\x00", LastName: "\x1b", Company: strings.Repeat("c", 201),
		Role: "r\n", CompanySize: 3_000_000_000, TimeZone: "Local", LeadSource: "billboard", OwnerEmail: "Sales <s@acme.example>"}
	err := bad.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *customer.FieldError
		require.True(t, errors.As(e, &fe), e)
		fields = append(fields, fe.Field)
	}
	assert.Equal(t, []string{"customer_id", "email", "first_name", "last_name", "company", "role", "company_size", "time_zone", "lead_source", "owner_email"}, fields)
}
