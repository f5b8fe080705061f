package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config/layout"
)

// Manifest is one entry of kubernetes.manifests: Kubernetes objects the
// servers keep applied, as k3s applies the files of its manifests
// directory. Its objects carry its name, so that those it no longer holds,
// or all of them once it is gone, are deleted.
type Manifest struct {
	// Name is a DNS label or subdomain of at most 63 characters; disable
	// names it too.
	Name string `yaml:"name"`
	// Content is one or more YAML (or JSON) documents, each an object
	// with apiVersion, kind and metadata.name.
	Content string `yaml:"content"`
}

// MaxManifestSize bounds a manifest: an inline one's content, or a file
// of the manifests directory.
const MaxManifestSize = 2 << 20

// maxManifestObjects bounds the objects of one manifest.
const maxManifestObjects = 1000

// internalManifestError starts the message of a problem made from a
// panic; the fuzz target fails on it.
const internalManifestError = "internal error while reading the manifest"

// maxManifestErrors is how many problems of one manifest are told.
const maxManifestErrors = 10

// manifestExts are the endings of the files of the manifests directory
// that are manifests, as k3s reads its own.
var manifestExts = []string{".yaml", ".yml", ".json"}

// ManifestFile says whether a file of the manifests directory (its base
// name) is a manifest, and the manifest's name: the base name without
// its ending.
func ManifestFile(base string) (name string, ok bool) {
	for _, ext := range manifestExts {
		if n, cut := strings.CutSuffix(base, ext); cut && n != "" {
			return n, true
		}
	}
	return "", false
}

// CheckManifestName says what is wrong with a manifest's name, "" when
// nothing is: it labels the manifest's objects, so it is a label value,
// and k3s names add-ons by DNS subdomains.
func CheckManifestName(name string) string {
	if len(name) > 63 || !isDNSName(name) {
		return "is not a manifest name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 63 characters"
	}
	return ""
}

// ManifestObject is one object of a manifest.
type ManifestObject struct {
	// Line is where its document (or its entry of a List) starts in the
	// manifest's text, from 1.
	Line   int
	Object map[string]any
}

// APIVersion is the object's apiVersion ("apps/v1").
func (o ManifestObject) APIVersion() string { s, _ := o.Object["apiVersion"].(string); return s }

// Kind is the object's kind ("Deployment").
func (o ManifestObject) Kind() string { s, _ := o.Object["kind"].(string); return s }

// Name is the object's metadata.name.
func (o ManifestObject) Name() string { return o.meta("name") }

// Namespace is the object's metadata.namespace, "" when it has none.
func (o ManifestObject) Namespace() string { return o.meta("namespace") }

func (o ManifestObject) meta(key string) string {
	m, _ := o.Object["metadata"].(map[string]any)
	s, _ := m[key].(string)
	return s
}

// String names the object as a person would: "Deployment default/web",
// "ClusterRole view-all".
func (o ManifestObject) String() string {
	if ns := o.Namespace(); ns != "" {
		return o.Kind() + " " + ns + "/" + o.Name()
	}
	return o.Kind() + " " + o.Name()
}

// ManifestError is one problem of a manifest's text.
type ManifestError struct {
	// Line and Column are where in the text, from 1; Line is 0 when it
	// is about the whole text, Column 1 when only the line is known.
	Line, Column int
	// Object names the object ("Deployment web"), "" when the problem
	// comes before there is one.
	Object string
	Msg    string
}

func (e *ManifestError) Error() string {
	s := e.Msg
	if e.Object != "" {
		s = e.Object + ": " + s
	}
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	return s
}

// ParseManifest reads a manifest's text: YAML documents separated by
// "---" (JSON is YAML too), each an object with apiVersion, kind and
// metadata.name, or a v1 List of them; empty documents are skipped. It
// returns the objects and every problem (at most a few), objects being
// nil when there is one: a manifest is applied whole or not at all.
func ParseManifest(data []byte) (objs []ManifestObject, problems []*ManifestError) {
	defer func() {
		// yaml.v3 has panicked on hostile input; the init must not.
		if r := recover(); r != nil {
			objs, problems = nil, []*ManifestError{{Msg: fmt.Sprintf("%s (%v): please report this with the manifest", internalManifestError, r)}}
		}
	}()
	add := func(at *yaml.Node, obj, format string, args ...any) {
		if len(problems) < maxManifestErrors {
			problems = append(problems, &ManifestError{Line: at.Line, Column: max(at.Column, 1), Object: obj, Msg: fmt.Sprintf(format, args...)})
		}
	}
	if len(data) > MaxManifestSize {
		add(&yaml.Node{}, "", "it is larger than %d MiB; split it into several manifests", MaxManifestSize>>20)
		return nil, problems
	}
	seen := map[string]int{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := yamlErrorLine(err)
			add(&yaml.Node{Line: line}, "", "not valid YAML: %s", msg)
			break
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue
		}
		for _, o := range manifestObjects(doc.Content[0], add) {
			group, _, _ := strings.Cut(o.APIVersion(), "/")
			key := group + " " + o.String()
			if first, dup := seen[key]; dup {
				add(o.node, o.String(), "it is also at line %d; give each object once", first)
				continue
			}
			seen[key] = o.Line
			objs = append(objs, o.ManifestObject)
		}
		if len(objs) > maxManifestObjects {
			add(&yaml.Node{}, "", "it has more than %d objects; split it into several manifests", maxManifestObjects)
			break
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return objs, nil
}

// placed is an object and the node it was read from.
type placed struct {
	ManifestObject
	node *yaml.Node
}

// addFunc records a problem at a node, about an object.
type addFunc func(at *yaml.Node, obj, format string, args ...any)

// parserErrors are the yaml.v3 messages of its parser (its scanner's
// differ): it gives their line counting from 0, the line where the
// mapping or sequence being read starts.
var parserErrors = []string{"did not find expected node content", "did not find expected key",
	"did not find expected '-' indicator", "did not find expected ',' or", "did not find expected <document start>"}

// yamlErrorLine is the line (from 1; 0 when unknown) a yaml.v3 error
// names, and its message without it.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := yamlErrLine.FindStringSubmatch(msg)
	if m == nil {
		return 0, msg
	}
	line, _ := strconv.Atoi(m[1])
	msg = strings.Replace(msg, m[0]+": ", "", 1)
	for _, p := range parserErrors {
		if strings.Contains(msg, p) {
			line++
		}
	}
	return line, msg
}

// manifestObjects reads one document's object, or a List's items.
func manifestObjects(n *yaml.Node, add addFunc) []placed {
	if n.Kind != yaml.MappingNode {
		add(n, "", "the document is %s, not an object with apiVersion, kind and metadata", kindName(n))
		return nil
	}
	var items *yaml.Node
	isList := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch {
		case k == "kind" && v.Value == "List":
			isList = true
		case k == "items":
			items = v
		}
	}
	if !isList {
		if o, ok := manifestObject(n, add); ok {
			return []placed{{o, n}}
		}
		return nil
	}
	if items == nil || (items.Kind != yaml.SequenceNode && !isNull(items)) {
		add(n, "", "a List needs items, a list of objects")
		return nil
	}
	var out []placed
	for _, it := range items.Content {
		if it.Kind != yaml.MappingNode {
			add(it, "", "an item of the List is %s, not an object", kindName(it))
			continue
		}
		if o, ok := manifestObject(it, add); ok {
			out = append(out, placed{o, it})
		}
	}
	return out
}

// manifestObject decodes one object and checks what applying it needs.
func manifestObject(n *yaml.Node, add addFunc) (ManifestObject, bool) {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		add(n, "", "%v", strings.TrimPrefix(err.Error(), "yaml: "))
		return ManifestObject{}, false
	}
	o := ManifestObject{Line: n.Line, Object: m}
	var missing []string
	if o.APIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if o.Kind() == "" {
		missing = append(missing, "kind")
	}
	if _, ok := m["metadata"].(map[string]any); !ok {
		missing = append(missing, "metadata")
	} else if o.Name() == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		what := "the object"
		if k := o.Kind(); k != "" {
			what = "the " + k
		}
		hint := ""
		if o.meta("generateName") != "" && o.Name() == "" {
			hint = " (generateName cannot be applied: an applied object is found again by its name)"
		}
		add(n, "", "%s here has no %s%s; every object needs apiVersion, kind and metadata.name", what, strings.Join(missing, ", "), hint)
		return o, false
	}
	name := o.String()
	ok := true
	if msg := checkAPIVersion(o.APIVersion()); msg != "" {
		add(n, name, "apiVersion %q %s", o.APIVersion(), msg)
		ok = false
	}
	if s := o.Name(); strings.ContainsAny(s, "/%") || s == "." || s == ".." {
		add(n, name, "metadata.name %q cannot name an object: it holds '/' or '%%', or is . or ..", s)
		ok = false
	}
	if ns := o.Namespace(); ns != "" && (len(ns) > 63 || !labelRe.MatchString(ns)) {
		add(n, name, "metadata.namespace %q is not a namespace name: lowercase letters, digits and '-', at most 63 characters", ns)
		ok = false
	}
	if _, err := json.Marshal(m); err != nil {
		add(n, name, "it cannot be sent as JSON (a key that is not a string, or a number like .inf): %v", err)
		ok = false
	}
	return o, ok
}

// checkAPIVersion says what is wrong with an apiVersion, "" when nothing
// is: "v1" for the core group, else GROUP/VERSION.
func checkAPIVersion(v string) string {
	group, version, grouped := strings.Cut(v, "/")
	if !grouped {
		group, version = "", group
	}
	if (grouped && !isDNSName(group)) || version == "" || !labelRe.MatchString(version) || strings.Contains(version, ".") {
		return "is not GROUP/VERSION (like apps/v1) or v1"
	}
	return ""
}

// HoldsSecret says whether a manifest's text holds a Secret, or cannot be
// read well enough to tell: printed, its content is redacted.
func HoldsSecret(data []byte) bool {
	objs, problems := ParseManifest(data)
	return len(problems) > 0 || slices.ContainsFunc(objs, isSecret)
}

func isSecret(o ManifestObject) bool { return o.Kind() == "Secret" }

// manifestFile says whether write_files entry w writes a manifest of the
// manifests directory, and its name.
func manifestFile(w WriteFile) (string, bool) {
	if path.Dir(w.Path) != layout.ManifestsDir {
		return "", false
	}
	return ManifestFile(path.Base(w.Path))
}

// manifests checks kubernetes.manifests and the manifests write_files
// writes into layout.ManifestsDir, each object at the line of the
// cloud-config its document starts on when the text is a literal block
// (content: |).
func (ck *checker) manifests() {
	k := &ck.c.Kubernetes
	const kp = "kubernetes.manifests"
	if len(k.Manifests) > 0 {
		switch {
		case k.Distribution == "k3s":
			ck.errorf(kp, "kubernetes.manifests is applied by cairn's own servers; k3s applies the files of its own directory: write each with write_files to /var/lib/rancher/k3s/server/manifests/NAME.yaml, or use distribution: builtin")
		case k.Role == "agent":
			ck.warnf(kp, "kubernetes.manifests is applied by the servers; agents ignore it")
		}
	}
	seen := map[string]int{}
	for i, m := range k.Manifests {
		p := fmt.Sprintf("%s[%d]", kp, i)
		switch {
		case m.Name == "":
			ck.errorf(p, "%s has no name; give it one, like name: my-app: its objects are labelled with it, and disable names it", p)
		case CheckManifestName(m.Name) != "":
			ck.errorf(p+".name", "%s.name %q %s", p, m.Name, CheckManifestName(m.Name))
		default:
			if j, dup := seen[m.Name]; dup {
				ck.errorf(p+".name", "%s.name %q is also the name of manifests[%d]; give each manifest a name of its own", p, m.Name, j)
			}
			seen[m.Name] = i
		}
		what := p
		if m.Name != "" {
			what = fmt.Sprintf("%s (%s)", p, m.Name)
		}
		ck.manifestText(p+".content", what, []byte(m.Content))
	}
	for i, w := range ck.c.WriteFiles {
		name, ok := manifestFile(w)
		if !ok {
			continue
		}
		wp := fmt.Sprintf("write_files[%d]", i)
		if msg := CheckManifestName(name); msg != "" {
			ck.add(Warning, wp+".path", []string{wp + ".path", wp}, "%s writes %s, whose name %q %s; the servers skip it: rename the file", wp, w.Path, name, msg)
			continue
		}
		if j, dup := seen[name]; dup {
			ck.add(Warning, wp+".path", []string{wp + ".path", wp}, "%s writes %s, a manifest of the same name as kubernetes.manifests[%d]; the servers apply the inline one and skip the file: rename one", wp, w.Path, j)
			continue
		}
		data, err := w.Decode()
		if _, _, _, small := structureOf(data); w.Append || w.Content == redactedText || err != nil || !small {
			// Appended to a file cairn cannot see, printed by cairn
			// validate --print, an error of its own, or decoded to more
			// YAML than a document may hold: the servers check it.
			continue
		}
		objs := ck.manifestText(wp+".content", w.Path, data)
		if m, err := w.Mode(); err == nil && m&0o004 != 0 && slices.ContainsFunc(objs, isSecret) {
			ck.add(Warning, wp+".permissions", []string{wp + ".permissions", wp + ".path"}, "%s writes the manifest %s, which holds a Secret, readable by every user (mode %04o); give it permissions: \"0600\"", wp, w.Path, m.Perm())
		}
	}
}

// manifestText checks one manifest's text, the string at path, and
// returns its objects; what names it in messages.
func (ck *checker) manifestText(path, what string, data []byte) []ManifestObject {
	objs, problems := ParseManifest(data)
	for _, e := range problems {
		l, exact := ck.inText(path, e.Line, e.Column)
		msg := e.Msg
		if e.Object != "" {
			msg = e.Object + ": " + msg
		}
		if e.Line > 0 && !exact {
			msg = fmt.Sprintf("line %d of its text: %s", e.Line, msg)
		}
		ck.keep(Diagnostic{File: l.File, Line: l.Line, Column: l.Column, Severity: Error, Path: path,
			Message: message("%s: %s", what, msg)})
	}
	return objs
}

// inText locates line and column (from 1) of the text of the string at
// path: exactly when it is a literal block (content: |), whose lines are
// all indented alike, else at the string itself.
func (ck *checker) inText(path string, line, col int) (pos, bool) {
	if b, ok := ck.c.locs[path+blockSuffix]; ok && line > 0 {
		return pos{File: b.File, Line: b.Line + line - 1, Column: b.Column + col - 1}, true
	}
	return ck.locate(path), false
}
