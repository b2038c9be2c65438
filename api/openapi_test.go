package api

import (
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/lifecycle/customer"
	"github.com/acme/lifecycle/workflows"
)

type openAPISpec struct {
	OpenAPI    string                    `yaml:"openapi"`
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]openAPISchema `yaml:"schemas"`
	} `yaml:"components"`
}

type openAPISchema struct {
	Type       string                   `yaml:"type"`
	Required   []string                 `yaml:"required"`
	Properties map[string]openAPISchema `yaml:"properties"`
	Enum       []string                 `yaml:"enum"`
	Ref        string                   `yaml:"$ref"`
	Desc       string                   `yaml:"description"`
	MaxItems   int                      `yaml:"maxItems"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadSpec(t *testing.T) openAPISpec {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	var spec openAPISpec
	require.NoError(t, yaml.Unmarshal(raw, &spec))
	require.True(t, strings.HasPrefix(spec.OpenAPI, "3."), "an OpenAPI 3 document")
	require.NotEmpty(t, spec.Paths)
	return spec
}

// specRoutes lists "METHOD /path" for every operation in the spec.
func specRoutes(spec openAPISpec) []string {
	var out []string
	for path, item := range spec.Paths {
		for key := range item {
			if slices.Contains(httpMethods, key) {
				out = append(out, strings.ToUpper(key)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesRoutes: every operation of api/openapi.yaml is routed
// by the mux (not a 404/405 of the mux) to the pattern of the same name,
// and every route the mux serves is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec := loadSpec(t)
	h := newHarness(t)
	documented := specRoutes(spec)
	for _, route := range documented {
		method, path, _ := strings.Cut(route, " ")
		concrete := strings.NewReplacer("{id}", "c-1").Replace(path)
		req := httptest.NewRequest(method, concrete, nil)
		_, pattern := h.srv.mux.Handler(req)
		assert.Equal(t, route, pattern, "%s is not routed (the mux would answer 404 or 405)", route)

		// And through the whole handler, the answer is not the mux's own
		// 404/405 (handlers answer JSON or HTML, the mux plain text).
		rec := h.serve(req)
		if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
			assert.NotContains(t, rec.Header().Get("Content-Type"), "text/plain", "%s answered by the mux: %d", route, rec.Code)
		}
	}
	served := slices.Clone(h.srv.routes)
	sort.Strings(served)
	assert.Equal(t, documented, served, "routes served and documented differ")

	// A method the spec does not list is refused by the mux.
	_, pattern := h.srv.mux.Handler(httptest.NewRequest(http.MethodDelete, "/v1/signups", nil))
	assert.Empty(t, pattern)
}

// jsonTags returns a struct type's JSON names, and those that are required
// (neither omitempty nor omitzero).
func jsonTags(t reflect.Type) (all, required []string) {
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	sort.Strings(all)
	sort.Strings(required)
	return all, required
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestOpenAPIRequestSchemasMatchTypes: the documented properties and
// required fields of the request bodies are the Go types' JSON tags.
func TestOpenAPIRequestSchemasMatchTypes(t *testing.T) {
	spec := loadSpec(t)
	for name, typ := range map[string]reflect.Type{
		"Signup":     reflect.TypeOf(workflows.Signup{}),
		"Event":      reflect.TypeOf(Event{}),
		"EventBatch": reflect.TypeOf(EventBatch{}),
	} {
		schema, ok := spec.Components.Schemas[name]
		require.True(t, ok, "schema %s", name)
		all, required := jsonTags(typ)
		assert.Equal(t, all, sortedKeys(schema.Properties), "%s: documented properties", name)
		assert.Equal(t, required, sorted(schema.Required), "%s: documented required fields", name)
	}
	// The API's Event is the journey's event plus the customer.
	apiAll, apiRequired := jsonTags(reflect.TypeOf(Event{}))
	wfAll, wfRequired := jsonTags(reflect.TypeOf(workflows.Event{}))
	assert.Equal(t, sorted(append(wfAll, "customer_id")), apiAll)
	assert.Equal(t, sorted(append(wfRequired, "customer_id")), apiRequired)

	batch := spec.Components.Schemas["EventBatch"].Properties["events"]
	assert.Equal(t, MaxBatch, batch.MaxItems)

	// Enumerations follow the code.
	assert.Equal(t, customer.LeadSources, spec.Components.Schemas["Signup"].Properties["lead_source"].Enum)
	for _, typ := range customer.KnownEventTypes {
		assert.Contains(t, spec.Components.Schemas["Event"].Properties["type"].Desc, typ, "known event type documented")
	}
}

// TestOpenAPIResponseSchemasMatchTypes: response schemas name exactly the
// Go types' JSON fields.
func TestOpenAPIResponseSchemasMatchTypes(t *testing.T) {
	spec := loadSpec(t)
	for name, typ := range map[string]reflect.Type{
		"SignupResponse": reflect.TypeOf(SignupResponse{}),
		"EventsResponse": reflect.TypeOf(EventsResponse{}),
		"ItemError":      reflect.TypeOf(ItemError{}),
		"ItemWarning":    reflect.TypeOf(ItemWarning{}),
		"Error":          reflect.TypeOf(ErrorResponse{}),
		"Readiness":      reflect.TypeOf(Readiness{}),
		"JourneyView":    reflect.TypeOf(workflows.JourneyView{}),
	} {
		schema, ok := spec.Components.Schemas[name]
		require.True(t, ok, "schema %s", name)
		all, required := jsonTags(typ)
		assert.Equal(t, all, sortedKeys(schema.Properties), "%s: documented properties", name)
		for _, r := range schema.Required {
			assert.Contains(t, required, r, "%s: %s is documented as always present but may be omitted", name, r)
		}
	}
	assert.Equal(t, customer.StageNames(), spec.Components.Schemas["JourneyView"].Properties["stage"].Enum,
		"the documented stages are the journey's (customer.Stages), in journey order")
}
