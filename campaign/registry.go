package campaign

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
)

//go:embed campaigns/*.yaml
var embedded embed.FS

// EmbeddedFS returns the campaign files shipped with the binary
// (campaign/campaigns/*.yaml), e.g. for a preview tool.
func EmbeddedFS() fs.FS {
	sub, err := fs.Sub(embedded, "campaigns")
	if err != nil {
		panic(err) // the directory is embedded; cannot happen
	}
	return sub
}

// Registry holds every loaded version of every campaign, so running
// journeys keep the version they started on. It is used on the activity
// side (loading reads files); it is safe for concurrent use. Campaigns it
// returns are shared: treat them as read-only.
type Registry struct {
	mu        sync.RWMutex
	campaigns map[string]map[string]*Campaign // id -> version -> campaign
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{campaigns: map[string]map[string]*Campaign{}}
}

// Add validates c and adds it (the registry keeps c itself: do not modify
// it afterwards). Adding the same id and version again with the same
// content (Source aside) is a no-op; with different content it is an error
// — a published version never changes, publish a new one.
func (r *Registry) Add(c *Campaign) error {
	if c == nil {
		return errors.New("add campaign: nil")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.conflict(c, nil); err != nil {
		return err
	}
	r.put(c)
	return nil
}

// conflict reports whether c clashes with a version already held or with
// one in batch (campaigns about to be added together).
func (r *Registry) conflict(c *Campaign, batch []*Campaign) error {
	others := batch
	if old, ok := r.campaigns[c.ID][c.Version]; ok {
		others = append([]*Campaign{old}, batch...)
	}
	for _, o := range others {
		if o.ID != c.ID || o.Version != c.Version {
			continue
		}
		if !SameContent(o, c) {
			return fmt.Errorf("%s: campaign %s is already defined with different content (in %s); publish changes as a new version",
				sourceOr(c), c.Key(), sourceOr(o))
		}
	}
	return nil
}

func sourceOr(c *Campaign) string {
	if c.Source == "" {
		return "(no file)"
	}
	return c.Source
}

// SameContent compares two definitions by what they say (their JSON form,
// which leaves out the source file and the template cache).
func SameContent(a, b *Campaign) bool {
	x, errX := contentMap(a)
	y, errY := contentMap(b)
	return errX == nil && errY == nil && reflect.DeepEqual(x, y)
}

func contentMap(c *Campaign) (map[string]any, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "source")
	return m, nil
}

func (r *Registry) put(c *Campaign) {
	if _, ok := r.campaigns[c.ID][c.Version]; ok {
		return // same content: keep the first
	}
	if r.campaigns[c.ID] == nil {
		r.campaigns[c.ID] = map[string]*Campaign{}
	}
	r.campaigns[c.ID][c.Version] = c
}

// LoadDir loads every *.yaml and *.yml file in dir (not its
// subdirectories). If any file fails to parse or validate, or clashes with
// a version already held, it returns an error naming every bad file and
// adds nothing. A directory without campaign files is an error.
func (r *Registry) LoadDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("load campaigns: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if ext := strings.ToLower(filepath.Ext(e.Name())); ext == ".yaml" || ext == ".yml" {
			files = append(files, e.Name())
		}
	}
	if len(files) == 0 {
		return fmt.Errorf("load campaigns: no *.yaml or *.yml files in %s", dir)
	}
	return r.loadAll(files, func(name string) ([]byte, string, error) {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		return data, p, err
	})
}

// LoadEmbedded loads the campaign files shipped with the binary
// (campaign/campaigns/*.yaml), all or nothing like LoadDir. Their Source is
// "embedded:campaigns/NAME.yaml".
func (r *Registry) LoadEmbedded() error {
	names, err := fs.Glob(embedded, "campaigns/*.yaml")
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("load campaigns: none embedded")
	}
	return r.loadAll(names, func(name string) ([]byte, string, error) {
		data, err := embedded.ReadFile(name)
		return data, "embedded:" + path.Clean(name), err
	})
}

func (r *Registry) loadAll(names []string, read func(string) ([]byte, string, error)) error {
	sort.Strings(names)
	var errs []error
	var batch []*Campaign
	for _, name := range names {
		data, src, err := read(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		c, err := Parse(data, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		batch = append(batch, c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range batch {
		if err := r.conflict(c, batch[:i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, c := range batch {
		r.put(c)
	}
	return nil
}

// Get returns one version of a campaign. The error for an unknown one names
// the id and version and lists the versions held.
func (r *Registry) Get(id, version string) (*Campaign, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c, ok := r.campaigns[id][version]; ok {
		return c, nil
	}
	if len(r.campaigns[id]) == 0 {
		return nil, fmt.Errorf("campaign %q version %q not found: no such campaign (known: %s)", id, version, listOrNone(r.ids()))
	}
	return nil, fmt.Errorf("campaign %q version %q not found (known versions: %s)", id, version, strings.Join(r.versions(id), ", "))
}

// Latest returns the highest version of a campaign by CompareVersions.
func (r *Registry) Latest(id string) (*Campaign, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	vs := r.versions(id)
	if len(vs) == 0 {
		return nil, fmt.Errorf("campaign %q not found (known: %s)", id, listOrNone(r.ids()))
	}
	return r.campaigns[id][vs[len(vs)-1]], nil
}

// IDs returns the ids of all campaigns held, sorted.
func (r *Registry) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ids()
}

// Versions returns the versions held for id, lowest first (CompareVersions).
func (r *Registry) Versions(id string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.versions(id)
}

func (r *Registry) ids() []string { return sortedKeys(r.campaigns) }

func (r *Registry) versions(id string) []string {
	vs := sortedKeys(r.campaigns[id])
	sort.SliceStable(vs, func(i, j int) bool { return CompareVersions(vs[i], vs[j]) < 0 })
	return vs
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// CompareVersions orders campaign versions; it returns -1, 0 or +1.
//
// Versions are split into segments at '.', '-' and '_'; segments are
// compared left to right, and within a segment runs of digits compare as
// numbers and other runs as text (so "v10" > "v9", "2026-11-01" >
// "2026-02-01", "1.10" > "1.9"). A digit run sorts before a text run at
// the same place; a version that is a prefix of another sorts first
// ("v1" < "v1.1", and note "v2" < "v2-rc1": there are no pre-release
// rules). Versions that compare equal this way (e.g. "v01" and "v1") fall
// back to plain string order, so the order is total.
func CompareVersions(a, b string) int {
	sa, sb := splitVersion(a), splitVersion(b)
	for i := 0; i < len(sa) && i < len(sb); i++ {
		if c := compareSegment(sa[i], sb[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(sa) < len(sb):
		return -1
	case len(sa) > len(sb):
		return 1
	}
	return strings.Compare(a, b)
}

func splitVersion(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' || r == '_' })
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func compareSegment(a, b string) int {
	for a != "" && b != "" {
		ra, rb := leadingRun(a), leadingRun(b)
		da, db := isDigit(ra[0]), isDigit(rb[0])
		var c int
		switch {
		case da && db:
			c = compareNumeric(ra, rb)
		case da:
			c = -1
		case db:
			c = 1
		default:
			c = strings.Compare(ra, rb)
		}
		if c != 0 {
			return c
		}
		a, b = a[len(ra):], b[len(rb):]
	}
	switch {
	case a == "" && b != "":
		return -1
	case a != "" && b == "":
		return 1
	}
	return 0
}

// leadingRun returns the leading run of digits or of non-digits of s.
func leadingRun(s string) string {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i]
}

// compareNumeric compares digit strings of any length as numbers.
func compareNumeric(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
