package simulate

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/acme/lifecycle/campaign"
)

// Where a problem is in a script file: the line and field path of each
// error, read from the YAML's syntax tree, and messages in the marketer's
// words (script.go decodes and checks the script).

// ScriptError is one problem in a script: where (line, field) and what.
type ScriptError struct {
	Source string
	Line   int
	Path   string
	Msg    string
}

// Error formats the problem as "file: line N: path: why".
func (e *ScriptError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source + ": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pathIndex maps YAML positions to field paths ("events[2].day") and back.
type pathIndex struct {
	byOffset map[int]string
	lines    map[string]int
}

func indexPaths(f *ast.File) *pathIndex {
	idx := &pathIndex{byOffset: map[int]string{}, lines: map[string]int{}}
	ast.Walk(idx, f.Docs[0].Body)
	return idx
}

func (idx *pathIndex) Visit(n ast.Node) ast.Visitor {
	tk := n.GetToken()
	if tk == nil {
		return idx
	}
	p := strings.TrimPrefix(strings.TrimPrefix(n.GetPath(), "$"), ".")
	if _, ok := idx.byOffset[tk.Position.Offset]; !ok {
		idx.byOffset[tk.Position.Offset] = p
	}
	if l, ok := idx.lines[p]; !ok || tk.Position.Line < l {
		idx.lines[p] = tk.Position.Line
	}
	return idx
}

// line is the line of path, or of its nearest parent in the file (a
// missing field is reported at the mapping it is missing from).
func (idx *pathIndex) line(path string) int {
	if idx == nil {
		return 0
	}
	for path != "" {
		if l, ok := idx.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

var positionRe = regexp.MustCompile(`\[(\d+):\d+\]\s*`)

// yamlError turns a goccy/go-yaml error into a ScriptError with the line
// and, where it can be found, the field.
func yamlError(source string, err error, idx *pathIndex) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &ScriptError{Source: source, Msg: err.Error()}
	}
	se := &ScriptError{Source: source, Msg: positionRe.ReplaceAllString(ye.GetMessage(), "")}
	var path string
	if tk := ye.GetToken(); tk != nil {
		se.Line = tk.Position.Line
		if idx != nil {
			path = idx.byOffset[tk.Position.Offset]
		}
	}
	var unknown *yaml.UnknownFieldError
	var typeErr *yaml.TypeError
	switch {
	case errors.As(err, &unknown):
		var parent, key string
		if i := strings.LastIndex(path, "."); i >= 0 {
			parent, key = path[:i], path[i+1:]
		} else {
			parent, key = "", path
		}
		where := "at the top level"
		if parent != "" {
			where = "in " + parent
		}
		se.Msg = fmt.Sprintf("unknown field %q %s%s", key, where, campaign.Suggest(key, fieldsAt(parent)))
	case errors.As(err, &typeErr):
		se.Path = path
		se.Msg = fmt.Sprintf("expected %s, got %s", kindName(typeErr.DstType), kindName(typeErr.SrcType))
	default:
		se.Path = path
	}
	return se
}

// fieldsAt lists the fields allowed in the mapping at path.
func fieldsAt(path string) []string {
	var t reflect.Type
	switch {
	case path == "":
		t = reflect.TypeFor[rawScript]()
	case path == "customer":
		t = reflect.TypeFor[Customer]()
	case path == "signup":
		t = reflect.TypeFor[rawWhen]()
	case strings.HasPrefix(path, "events["):
		t = reflect.TypeFor[rawEvent]()
	default:
		return nil
	}
	var names []string
	for f := range t.Fields() {
		if n, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "something else"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "text"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value lines)"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.String()
}
