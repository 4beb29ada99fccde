package yamlconf

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest configuration file aiwatt reads: 1 MiB. A
// real configuration is a few kilobytes; a larger file is a mistake (a log
// or a data file named by --config.file) and would cost memory and start
// time out of all proportion.
const MaxFileSize = 1 << 20

func tooLarge(name string) error {
	return fmt.Errorf("%s: configuration file is larger than %d bytes (1 MiB), the most aiwatt reads", name, MaxFileSize)
}

// ReadFile reads a configuration file of at most MaxFileSize bytes; a
// larger file is refused without being read whole.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path)
	}
	return data, nil
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	textType        = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// checkScalars walks the document beside the type it was decoded into and
// refuses the values the YAML library accepts silently: .nan and .inf (a
// NaN limit disables every comparison made with it) and a fraction decoded
// into an integer (the library truncates 7.9 to 7). Types with their own
// UnmarshalYAML or UnmarshalText are left to their own checks.
func checkScalars(name string, root *yaml.Node, out any) error {
	c := checker{name: name, seen: map[*yaml.Node]bool{}}
	c.walk(root, reflect.TypeOf(out))
	if len(c.msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(c.msgs, "\n"))
}

type checker struct {
	name string
	msgs []string
	seen map[*yaml.Node]bool // alias targets already walked
}

func (c *checker) walk(n *yaml.Node, t reflect.Type) {
	if n == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || c.seen[n.Alias] {
			return
		}
		c.seen[n.Alias] = true
		c.walk(n.Alias, t)
		return
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t.Kind() != reflect.Interface && (reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textType)) {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, m := range n.Content {
			c.walk(m, t)
		}
	case yaml.SequenceNode:
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for _, m := range n.Content {
			c.walk(m, elem)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				c.walk(v, t)
				continue
			}
			c.walk(v, fieldType(t, k.Value))
		}
	case yaml.ScalarNode:
		c.scalar(n, t)
	}
}

// scalar checks one plain value against the kind it is decoded into; t is
// nil where the target is unknown (then only .nan and .inf are refused).
func (c *checker) scalar(n *yaml.Node, t reflect.Type) {
	if n.ShortTag() != "!!float" {
		return
	}
	kind := reflect.Interface
	if t != nil {
		kind = t.Kind()
	}
	// The YAML spellings .nan, .inf, -.Inf, ... do not parse in Go; a
	// number too large for a float64 parses as ±Inf.
	var f float64
	special := false
	switch v := strings.ToLower(strings.TrimLeft(n.Value, "+-")); v {
	case ".nan", ".inf":
		special = true
	default:
		var err error
		f, err = strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		special = math.IsInf(f, 0) || math.IsNaN(f)
		if err != nil && !special {
			return
		}
	}
	switch kind {
	case reflect.Float32, reflect.Float64, reflect.Interface:
		if special {
			c.msgs = append(c.msgs, fmt.Sprintf("%s:%d: not-a-number and infinite values (.nan, .inf) are not allowed", c.name, n.Line))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if t == durationType {
			return // the library refuses a bare number as a duration itself
		}
		if special || f != math.Trunc(f) {
			c.msgs = append(c.msgs, fmt.Sprintf("%s:%d: a whole number is required here; a fraction would be truncated", c.name, n.Line))
		}
	}
}

// fieldType is the type the value of key decodes into in t: a struct field
// by its yaml name (inline structs included) or a map's element; nil when
// unknown.
func fieldType(t reflect.Type, key string) reflect.Type {
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			fname, opts, _ := strings.Cut(tag, ",")
			if fname == "-" {
				continue
			}
			if strings.Contains(","+opts+",", ",inline,") {
				ft := f.Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if r := fieldType(ft, key); r != nil {
					return r
				}
				continue
			}
			if fname == "" {
				fname = strings.ToLower(f.Name)
			}
			if fname == key {
				return f.Type
			}
		}
	}
	return nil
}
