package campaign

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// DecodeError is a problem reading a campaign file before validation: bad
// YAML, an unknown field, a value of the wrong type or a malformed duration.
type DecodeError struct {
	Source string
	// Line is the line in Source (0 when unknown).
	Line int
	// Path is the field, e.g. "trial.length" (empty when unknown).
	Path string
	Msg  string
}

// Error formats the problem as "file: line N: path: why".
func (e *DecodeError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadFile reads and parses one campaign file (see Parse).
func LoadFile(path string) (*Campaign, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse decodes one campaign version from YAML and validates it. Decoding
// is strict: unknown fields, duplicate keys and more than one YAML document
// are errors. source names the file in errors and becomes Campaign.Source.
//
// Errors name the file, the field path and why, e.g.
//
//	campaigns/saas.yaml: line 12: unknown field "tresholt" in scoring (did you mean "threshold"?)
//	campaigns/saas.yaml: scoring.threshold: must be > 0 (got 0) (line 12)
//
// Validation problems are all reported (joined with errors.Join, as
// *FieldError); a decoding problem stops at the first (*DecodeError).
func Parse(data []byte, source string) (c *Campaign, err error) {
	defer func() {
		// Bad input must never crash a worker, whatever the decoder does.
		if r := recover(); r != nil {
			c, err = nil, &DecodeError{Source: source, Msg: fmt.Sprintf("cannot decode: %v", r)}
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &DecodeError{Source: source, Msg: "file is empty"}
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, decodeError(source, err, nil)
	}
	if len(file.Docs) == 0 || file.Docs[0] == nil || file.Docs[0].Body == nil {
		return nil, &DecodeError{Source: source, Msg: "file holds no campaign (only comments?)"}
	}
	idx := indexPaths(file)
	if n := len(file.Docs); n > 1 {
		line := 0
		if d := file.Docs[1]; d.Start != nil {
			line = d.Start.Position.Line
		} else if d.Body != nil && d.Body.GetToken() != nil {
			line = d.Body.GetToken().Position.Line
		}
		return nil, &DecodeError{Source: source, Line: line, Msg: fmt.Sprintf("%d YAML documents; a file holds one campaign version", n)}
	}
	var out Campaign
	if err := yaml.UnmarshalWithOptions(data, &out, yaml.DisallowUnknownField()); err != nil {
		return nil, decodeError(source, err, idx)
	}
	if err := checkWholeNumbers(file, source); err != nil {
		return nil, err
	}
	out.Source = source
	probs := out.problems()
	if len(probs) == 0 {
		return &out, nil
	}
	errs := make([]error, len(probs))
	for i, p := range probs {
		p.Line = idx.line(p.Path)
		errs[i] = p
	}
	return nil, errors.Join(errs...)
}

// pathIndex maps YAML positions to field paths and back.
type pathIndex struct {
	byOffset map[int]string // token offset -> "a.b[0].c"
	lines    map[string]int // "a.b[0].c" -> line
}

func indexPaths(f *ast.File) *pathIndex {
	idx := &pathIndex{byOffset: map[int]string{}, lines: map[string]int{}}
	if len(f.Docs) == 0 || f.Docs[0] == nil || f.Docs[0].Body == nil {
		return idx
	}
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
	if _, ok := idx.lines[p]; !ok || tk.Position.Line < idx.lines[p] {
		idx.lines[p] = tk.Position.Line
	}
	return idx
}

func (idx *pathIndex) line(path string) int {
	if idx == nil {
		return 0
	}
	return idx.lines[path]
}

func (idx *pathIndex) path(e yaml.Error) string {
	if idx == nil || e.GetToken() == nil {
		return ""
	}
	return idx.byOffset[e.GetToken().Position.Offset]
}

// decodeError turns a goccy/go-yaml error into a DecodeError with the line
// and, where it can be found, the field path.
func decodeError(source string, err error, idx *pathIndex) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &DecodeError{Source: source, Msg: err.Error()}
	}
	de := &DecodeError{Source: source, Msg: ye.GetMessage()}
	if tk := ye.GetToken(); tk != nil {
		de.Line = tk.Position.Line
	}
	path := idx.path(ye)
	var unknown *yaml.UnknownFieldError
	var typeErr *yaml.TypeError
	var nodeErr *yaml.UnexpectedNodeTypeError
	var overflow *yaml.OverflowError
	switch {
	case errors.As(err, &unknown):
		// The path is the unknown key's; name the mapping it is in.
		parent, key := splitPath(path)
		if parent != "" {
			de.Msg += " in " + parent
		}
		de.Msg += Suggest(key, fieldNames(parent))
	case errors.As(err, &typeErr):
		de.Path = path
		de.Msg = fmt.Sprintf("expected %s, got %s", kindName(typeErr.DstType), srcName(typeErr.SrcType))
	case errors.As(err, &nodeErr):
		de.Path = path
		de.Msg = fmt.Sprintf("expected %s, got %s", nodeTypeName(nodeErr.Expected), nodeTypeName(nodeErr.Actual))
	case errors.As(err, &overflow):
		de.Path = path
		de.Msg = fmt.Sprintf("number %s is too large", overflow.SrcNum)
	default:
		de.Path = path
	}
	de.Msg = positionRe.ReplaceAllString(de.Msg, "line $1")
	return de
}

var positionRe = regexp.MustCompile(`\[(\d+):\d+\]`)

func nodeTypeName(t ast.NodeType) string {
	switch t {
	case ast.SequenceType:
		return "a list"
	case ast.MappingType, ast.MappingValueType:
		return "a mapping (key: value lines)"
	case ast.StringType:
		return "text"
	case ast.IntegerType, ast.FloatType:
		return "a number"
	case ast.BoolType:
		return "true or false"
	case ast.NullType:
		return "nothing"
	}
	return t.YAMLName()
}

// checkWholeNumbers rejects a decimal number where the campaign wants a
// whole number (the decoder would silently drop the fraction).
func checkWholeNumbers(f *ast.File, source string) error {
	if len(f.Docs) == 0 || f.Docs[0] == nil || f.Docs[0].Body == nil {
		return nil
	}
	var found *DecodeError
	ast.Walk(visitFunc(func(n ast.Node) bool {
		if found != nil {
			return false
		}
		fn, ok := n.(*ast.FloatNode)
		if !ok {
			return true
		}
		p := strings.TrimPrefix(strings.TrimPrefix(fn.GetPath(), "$"), ".")
		if t := typeAt(p); t != nil && isInt(t) {
			found = &DecodeError{Source: source, Line: fn.GetToken().Position.Line, Path: p,
				Msg: fmt.Sprintf("expected a whole number, got %s", fn.GetToken().Value)}
		}
		return true
	}), f.Docs[0].Body)
	if found != nil {
		return found
	}
	return nil
}

type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if f(n) {
		return f
	}
	return nil
}

func isInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t != reflect.TypeFor[Duration]()
	}
	return false
}

// typeAt returns the Go type of the value at path ("a.b[0].c") in a
// Campaign, or nil.
func typeAt(path string) reflect.Type {
	t := reflect.TypeFor[Campaign]()
	if path == "" {
		return t
	}
	for _, seg := range strings.Split(path, ".") {
		name, idx, indexed := strings.Cut(seg, "[")
		t = fieldType(t, name)
		if t == nil {
			return nil
		}
		for ; indexed; _, idx, indexed = strings.Cut(idx, "[") {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
				return nil
			}
			t = t.Elem()
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// splitPath splits "a.b[0].c" into "a.b[0]" and "c".
func splitPath(p string) (parent, last string) {
	i := strings.LastIndex(p, ".")
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// fieldNames lists the YAML field names of the struct at path in a
// Campaign, for "did you mean" hints.
func fieldNames(path string) []string {
	t := typeAt(path)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Fields() {
		if n := yamlName(f); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func fieldType(t reflect.Type, name string) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		for f := range t.Fields() {
			if yamlName(f) == name {
				return f.Type
			}
		}
	}
	return nil
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "a different kind of value"
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

func srcName(t reflect.Type) string {
	if t == nil {
		return "something else"
	}
	switch t.Kind() {
	case reflect.String:
		return "text"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "a mapping"
	}
	return kindName(t)
}
