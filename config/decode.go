package config

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// pos is where a key or value was written.
type pos struct {
	File   string
	Line   int
	Column int
}

// decoder fills Go values from a yaml.Node tree strictly: unknown keys,
// repeated keys and values of the wrong type are located diagnostics, and
// decoding goes on after each so that every problem is reported at once.
type decoder struct {
	file string
	collector
	// locs maps each config path that the document sets ("kubernetes.vip",
	// "write_files[0].path") to where it is written: the value for a
	// scalar, the key for a mapping or a list.
	locs map[string]pos
	// nodes and bytes count the values visited and their size, aliases
	// expanded; tooLarge is set once either is over budget.
	nodes, bytes int
	tooLarge     bool
	// merging holds the mappings whose keys are being collected, to
	// refuse a merge key that names its own mapping.
	merging map[*yaml.Node]bool
	// src is the document's text, to find where a block's lines start;
	// lineStarts are the offsets of its lines, once a block needs them.
	src        []byte
	lineStarts []int
	// unknown says what a key the schema lacks is, set to val: a message
	// of its own, or silence when msg is "" and ok; nil, or ok false,
	// means the generic unknown-key error.
	unknown func(path, key string, val *yaml.Node) (sev Severity, msg string, ok bool)
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, locs: map[string]pos{}}
}

func (d *decoder) at(n *yaml.Node) pos {
	if n == nil {
		return pos{File: d.file}
	}
	return pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) report(n *yaml.Node, sev Severity, path, format string, args ...any) {
	p := d.at(n)
	d.keep(Diagnostic{
		File: p.File, Line: p.Line, Column: p.Column,
		Severity: sev, Path: path, Message: message(format, args...),
	})
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.report(n, Error, path, format, args...)
}

// visit counts a node against the budget; false means stop.
func (d *decoder) visit(n *yaml.Node) bool {
	if d.tooLarge {
		return false
	}
	d.nodes++
	if n.Kind == yaml.ScalarNode {
		d.bytes += len(n.Value)
	}
	switch {
	case d.nodes > maxNodes:
		d.refuse(n, fmt.Sprintf("document has more than %d values, aliases expanded; cairn refuses it: a cloud-config is far smaller, check that this is the right file", maxNodes))
	case d.bytes > maxExpanded:
		d.refuse(n, fmt.Sprintf("document's aliases expand it to more than %d MiB; cairn refuses it: repeat long values less often", maxExpanded>>20))
	}
	return !d.tooLarge
}

// refuse replaces every diagnostic of the document with one saying why it
// is refused as a whole: its other problems do not matter then.
func (d *decoder) refuse(n *yaml.Node, msg string) {
	d.tooLarge = true
	d.collector = collector{}
	d.errorf(n, "", "%s", msg)
}

// resolve follows aliases to the node they name.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a string"
	}
	return "something else"
}

// yamlName is a struct field's key, from its yaml tag.
func yamlName(f reflect.StructField) (name string, inline bool) {
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if strings.Contains(opts, "inline") {
		return "", true
	}
	if name == "-" || !f.IsExported() {
		return "", false
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name, false
}

// fieldsOf lists a struct's keys with the index path to each field,
// descending into inline structs.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, inline := yamlName(f)
			idx := append(append([]int{}, prefix...), i)
			if inline && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name != "" {
				out[name] = idx
			}
		}
	}
	walk(t, nil)
	return out
}

// keyNames lists a struct's keys in declaration order, for messages.
func keyNames(t reflect.Type) []string {
	fields := fieldsOf(t)
	names := slices.Collect(maps.Keys(fields))
	slices.SortFunc(names, func(a, b string) int { return slices.Compare(fields[a], fields[b]) })
	return names
}

type pair struct {
	key, val *yaml.Node
}

// pairs returns a mapping's entries with merge keys ("<<: *anchor")
// expanded; explicit keys win over merged ones. Keys that are not strings
// and repeated keys are reported.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var explicit, merged []pair
	seen := map[string]*yaml.Node{}
	if d.merging == nil {
		d.merging = map[*yaml.Node]bool{}
	}
	d.merging[n] = true
	defer delete(d.merging, n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k == nil || !d.visit(k) {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "%s: a key must be a string, not %s", orTop(path), kindName(k))
			continue
		}
		if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0) {
			mv := d.resolve(v)
			if mv == nil {
				continue
			}
			var srcs []*yaml.Node
			switch mv.Kind {
			case yaml.MappingNode:
				srcs = []*yaml.Node{mv}
			case yaml.SequenceNode:
				for _, s := range mv.Content {
					if s = d.resolve(s); s != nil {
						srcs = append(srcs, s)
					}
				}
			}
			for _, s := range srcs {
				if s.Kind != yaml.MappingNode {
					d.errorf(s, path, "%s: a merge key (<<) must name a mapping, not %s", orTop(path), kindName(s))
					continue
				}
				if d.merging[s] {
					d.errorf(k, path, "%s: the merge key (<<) names a mapping that contains it", orTop(path))
					continue
				}
				merged = append(merged, d.pairs(s, path)...)
			}
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "%s is set twice (first at line %d); remove one", join(path, k.Value), first.Line)
			continue
		}
		seen[k.Value] = k
		explicit = append(explicit, pair{k, v})
	}
	out := explicit
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; ok {
			continue
		}
		seen[p.key.Value] = p.key
		out = append(out, p)
	}
	return out
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// record notes where path is set: at the value for scalars, at the key
// for collections.
func (d *decoder) record(path string, key, val *yaml.Node) {
	if path == "" {
		return
	}
	n := val
	if key != nil && (val == nil || val.Kind != yaml.ScalarNode) {
		n = key
	}
	d.locs[path] = d.at(n)
}

// decode fills v from n. n may be nil (nothing to do).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = d.resolve(n)
	if n == nil || !d.visit(n) {
		return
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if n.Kind == yaml.SequenceNode && keyJoins[path] {
			d.joinList(n, v, path)
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "%s must be a string, not %s", path, kindName(n))
			return
		}
		v.SetString(n.Value)
		if n.Style&yaml.LiteralStyle != 0 {
			d.locs[path+blockSuffix] = d.blockStart(n)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "%s must be true or false, not %s", path, kindName(n))
			return
		}
		b, ok := yamlBool(n.Value)
		if !ok {
			d.errorf(n, path, "%s must be true or false, not %q", path, n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "%s must be a whole number, not %s", path, kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 32)
		if err != nil {
			d.errorf(n, path, "%s must be a whole number, not %q", path, n.Value)
			return
		}
		v.SetInt(i)
	default:
		// Only the kinds above appear in the schema.
		d.errorf(n, path, "%s: cairn cannot decode this key (internal: %s)", path, v.Kind())
	}
}

// blockSuffix marks, in locs, where the text of a literal block (key: |)
// begins: its first line and its indentation, so that a line of the text
// (a manifest's document) is located in the file.
const blockSuffix = "|"

// blockStart is where the text of the literal block n begins: the line
// after its indicator, at the column of its first non-blank line.
func (d *decoder) blockStart(n *yaml.Node) pos {
	if d.lineStarts == nil {
		d.lineStarts = []int{0}
		for i, c := range d.src {
			if c == '\n' {
				d.lineStarts = append(d.lineStarts, i+1)
			}
		}
	}
	p := pos{File: d.file, Line: n.Line + 1, Column: 1}
	// Line n.Line+1 starts at lineStarts[n.Line]; the scan stops at the
	// first line with text, so all blocks together read the text once.
	for i := n.Line; i < len(d.lineStarts); i++ {
		end := len(d.src)
		if i+1 < len(d.lineStarts) {
			end = d.lineStarts[i+1]
		}
		l := bytes.TrimRight(d.src[d.lineStarts[i]:end], "\r\n")
		if t := bytes.TrimLeft(l, " "); len(t) > 0 {
			p.Column = len(l) - len(t) + 1
			break
		}
	}
	return p
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "%s must be a mapping of keys, not %s", orTop(path), kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path) {
		key := p.key.Value
		kp := join(path, key)
		idx, ok := fields[key]
		if !ok {
			sev, msg, known := Error, "", false
			if d.unknown != nil {
				sev, msg, known = d.unknown(path, key, d.resolve(p.val))
			}
			switch {
			case !known:
				d.report(p.key, Error, kp, "%s", unknownKeyMessage(key, path, keyNames(v.Type())))
			case msg != "":
				d.report(p.key, sev, kp, "%s", msg)
			}
			continue
		}
		d.record(kp, p.key, d.resolve(p.val))
		d.decode(p.val, v.FieldByIndex(idx), kp)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "%s must be a mapping, not %s", path, kindName(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for _, p := range d.pairs(n, path) {
		kp := join(path, p.key.Value)
		d.record(kp, p.key, d.resolve(p.val))
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(p.val, ev, kp)
		m.SetMapIndex(reflect.ValueOf(p.key.Value), ev)
	}
	v.Set(m)
}

// yamlBool reads the booleans YAML 1.1 knows and cloud-init writes.
func yamlBool(s string) (b, ok bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// joinList reads a list of strings as one comma-separated string, the
// way k3s takes cluster-cidr: [v4, v6].
func (d *decoder) joinList(n *yaml.Node, v reflect.Value, path string) {
	var parts []string
	for _, e := range n.Content {
		e = d.resolve(e)
		if e == nil || !d.visit(e) {
			return
		}
		if e.Kind != yaml.ScalarNode || isNull(e) {
			d.errorf(e, path, "%s must be a string or a list of strings, not a list with %s", path, kindName(e))
			return
		}
		parts = append(parts, e.Value)
	}
	v.SetString(strings.Join(parts, ","))
}

// kubernetesList reads a kubernetes key that is a list in k3s's config
// file from the single string k3s also takes, split at commas for the keys
// k3s splits. Lists nested deeper (registries) take lists only, as k3s's
// registries.yaml does.
func (d *decoder) kubernetesList(n *yaml.Node, v reflect.Value, path string) {
	items := []string{n.Value}
	if keySplits[path] {
		items = splitComma(n.Value)
	}
	d.locs[path+"[0]"] = d.at(n)
	v.Set(reflect.ValueOf(items))
}

// splitComma splits s at commas, dropping blanks around and empty items.
func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if key, ok := strings.CutPrefix(path, "kubernetes."); ok && n.Kind == yaml.ScalarNode && !strings.ContainsAny(key, ".[") && v.Type().Elem().Kind() == reflect.String {
		d.kubernetesList(n, v, path)
		return
	}
	if n.Kind != yaml.SequenceNode {
		what := "strings"
		if v.Type().Elem().Kind() != reflect.String {
			what = "entries"
		}
		hint := ""
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			hint = fmt.Sprintf(" (write [%s])", n.Value)
		}
		d.errorf(n, path, "%s must be a list of %s, not %s%s", path, what, kindName(n), hint)
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, e := range n.Content {
		ep := fmt.Sprintf("%s[%d]", path, i)
		re := d.resolve(e)
		if re != nil {
			d.locs[ep] = d.at(re)
		}
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(e, ev, ep)
		if keySplits[path] && re != nil && re.Kind == yaml.ScalarNode {
			for _, item := range splitComma(ev.String()) {
				s = reflect.Append(s, reflect.ValueOf(item))
			}
			continue
		}
		s = reflect.Append(s, ev)
	}
	v.Set(s)
}

// unknownKeyMessage says a key is unknown and suggests the closest known
// one (cluster_cidr → cluster-cidr).
func unknownKeyMessage(key, path string, known []string) string {
	where := "at the top level"
	if path != "" {
		where = "in " + path
	}
	msg := fmt.Sprintf("unknown key %q %s", key, where)
	if s := suggest(key, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(known) > 0 && len(known) <= 24 {
		msg += "; known keys: " + strings.Join(known, ", ")
	}
	return msg
}

func suggest(key string, known []string) string {
	if len(key) > 64 {
		// Longer than any key; and editDistance would not look.
		return ""
	}
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "-", " ", "-").Replace(s))
	}
	best, bestD := "", 3
	for _, k := range known {
		if norm(k) == norm(key) {
			return k
		}
		if dd := editDistance(norm(key), norm(k)); dd < bestD {
			best, bestD = k, dd
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
