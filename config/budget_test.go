package config

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

// repeatTo writes head, then item until the document is size bytes (less
// the tail), then tail.
func repeatTo(size int, head, item, tail string) string {
	var b strings.Builder
	b.WriteString(head)
	for b.Len()+len(item)+len(tail) <= size {
		b.WriteString(item)
	}
	b.WriteString(tail)
	return b.String()
}

// hostile documents, each at most MaxDocumentSize bytes and each built to
// make the loader spend time or memory. The "at the limit" ones are just
// small enough to be parsed.
var hostile = []struct{ name, doc string }{
	{"long value repeated by aliases", repeatTo(600<<10, "kubernetes:\n  tls-san: [&v \""+strings.Repeat("x", 512<<10)+"\"", ",*v", "]\n")},
	{"many small flow items", repeatTo(MaxDocumentSize, "kubernetes:\n  tls-san: [a", ",a", "]\n")},
	{"many small flow items at the limit", repeatTo(2*maxStructure, "kubernetes:\n  tls-san: [a", ",a", "]\n")},
	{"many flow mappings", repeatTo(MaxDocumentSize, "kubernetes:\n  tls-san: [{a", ",a", "}]\n")},
	{"many flow mappings at the limit", repeatTo(2*maxStructure, "kubernetes:\n  tls-san: [{a", ",a", "}]\n")},
	{"many one-pair flow mappings at the limit", repeatTo(4*maxStructure, "kubernetes:\n  tls-san: [{a:b}", ",{a:b}", "]\n")},
	{"many block items", repeatTo(MaxDocumentSize, "kubernetes:\n  tls-san:\n", "  - a\n", "")},
	{"many block items at the limit", repeatTo(6*maxStructure, "kubernetes:\n  tls-san:\n", "  - a\n", "")},
	{"many invalid values", invalidValues()},
	{"many unknown long keys", unknownKeys()},
	{"deep nesting", "a: " + strings.Repeat("[", MaxDocumentSize/2-8) + strings.Repeat("]", MaxDocumentSize/2-8) + "\n"},
	{"one long line", "hostname: " + strings.Repeat("h", MaxDocumentSize-20) + "\n"},
	{"many aliases of a long list", aliasesOfList()},
	{"many words", repeatTo(MaxDocumentSize, "", "0 ", "\n")},
	{"many lines of one value", repeatTo(MaxDocumentSize, "hostname: a\n", " a\n", "")},
	{"many words and items at the limits", repeatTo(2*maxStructure, "kubernetes:\n  tls-san: [a", ",a", "]\n") +
		repeatTo(2*maxGaps-2*maxStructure, "hostname: a", " a", "\n")},
}

func invalidValues() string {
	var b strings.Builder
	b.WriteString("kubernetes:\n  tls-san:\n")
	for i := 0; b.Len() < MaxDocumentSize-40; i++ {
		fmt.Fprintf(&b, "  - \"bad name %d\"\n", i)
	}
	return b.String()
}

func unknownKeys() string {
	var b strings.Builder
	for i := 0; b.Len() < MaxDocumentSize-2000; i++ {
		fmt.Fprintf(&b, "%s%d: 1\n", strings.Repeat("k", 1000), i)
	}
	return b.String()
}

// aliasesOfList makes a list of 1000 long values and refers to it many
// times, each alias costing a few bytes.
func aliasesOfList() string {
	var b strings.Builder
	b.WriteString("x: &l [")
	for i := 0; i < 1000; i++ {
		b.WriteString(strings.Repeat("v", 1000) + ",")
	}
	b.WriteString("]\nkubernetes:\n  <<: {tls-san: *l}\n  node-label: [")
	for i := 0; i < 2000; i++ {
		b.WriteString("*l,")
	}
	b.WriteString("]\n")
	return b.String()
}

// BenchmarkHostile loads each hostile document: ns/op and B/op (all the
// memory one load allocates, an upper bound of its heap) are the budget's
// figures; out-bytes is what cairn validate would print.
func BenchmarkHostile(b *testing.B) {
	for _, h := range hostile {
		doc := []byte(h.doc)
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			var out, lines int
			for b.Loop() {
				_, diags := Load(Source{Name: "user-data", Data: doc})
				out, lines = len(messages(diags)), len(diags)
			}
			b.ReportMetric(float64(out), "out-bytes")
			b.ReportMetric(float64(lines), "lines")
		})
	}
}

// TestHostileBudget checks what a user sees for each hostile document: a
// refusal or a short list of problems, never more than maxShown lines plus
// the "and N more" line, each of bounded length; and that no load
// allocates more than the budget's heap.
func TestHostileBudget(t *testing.T) {
	const heapBudget = 64 << 20
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			if len(h.doc) > MaxDocumentSize {
				t.Fatalf("test document is %d bytes, more than MaxDocumentSize", len(h.doc))
			}
			alloc := allocated(func() {
				cfg, diags := Load(Source{Name: "user-data", Data: []byte(h.doc)})
				if cfg != nil || !diags.HasErrors() {
					t.Errorf("a hostile document loaded: %v", diags)
				}
				if len(diags) > maxShown+1 {
					t.Errorf("%d diagnostics, want at most %d", len(diags), maxShown+1)
				}
				for _, d := range diags {
					if len(d.String()) > maxMessage+200 {
						t.Errorf("a diagnostic of %d bytes: %.200s…", len(d.String()), d)
					}
				}
			})
			if alloc > heapBudget {
				t.Errorf("loading allocated %d MiB, more than the %d MiB budget", alloc>>20, heapBudget>>20)
			}
		})
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzBudget checks the budget's memory half on the fuzzer's documents:
// each is loaded as it is and repeated up to fuzzRepeat bytes (the shape of
// most hostile documents: one small piece many times), and neither load
// may allocate more than 64 MiB. The time half is BenchmarkHostile's, and
// TestHostileBudget holds the documents of the full 4 MiB.
func FuzzBudget(f *testing.F) {
	seedCorpus(f)
	for _, s := range []string{"[a,", "- a\n", "{a: [b, {c: d}], ", "a: &a [*a, ", "k: &v x\nl: [*v, *v, ", "\t- x\n", "? a\n: b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const heapBudget = 64 << 20
		docs := [][]byte{data}
		if len(data) > 0 && len(data) <= fuzzRepeat/2 {
			docs = append(docs, bytes.Repeat(data, fuzzRepeat/len(data)))
		}
		for _, doc := range docs {
			var diags Diagnostics
			alloc := allocated(func() { _, diags = Load(Source{Name: "fuzz", Data: doc}) })
			if alloc > heapBudget {
				t.Fatalf("loading %d bytes allocated %d MiB, more than %d MiB", len(doc), alloc>>20, heapBudget>>20)
			}
			if len(diags) > maxShown+1 {
				t.Fatalf("%d diagnostics, more than %d", len(diags), maxShown+1)
			}
		}
	})
}

// fuzzRepeat is the size FuzzBudget repeats a document to: half of
// MaxDocumentSize, because the fuzzing engine kills a worker whose call
// takes 10 s, and a 4 MiB document starved of CPU on a busy machine can.
// Every count limit is reached well below it.
const fuzzRepeat = MaxDocumentSize / 2

func TestShortValues(t *testing.T) {
	long := strings.Repeat("a", 40) + strings.Repeat("b", 1000) + "end"
	tests := []struct{ format, arg, want string }{
		{"%q", "short", `"short"`},
		{"%q", long, `"` + strings.Repeat("a", 32) + `"…"` + strings.Repeat("b", 13) + `end" (1043 bytes)`},
		{"%s", long, strings.Repeat("a", 32) + "…" + strings.Repeat("b", 13) + "end (1043 bytes)"},
	}
	for _, tt := range tests {
		if got := message("value "+tt.format+" is bad", tt.arg); got != "value "+tt.want+" is bad" {
			t.Errorf("message(%s, %d bytes) = %q, want %q", tt.format, len(tt.arg), got, "value "+tt.want+" is bad")
		}
	}
	// A multi-byte character is never cut in two.
	if got := fmt.Sprint(short(strings.Repeat("é", 100))); !utf8.ValidString(got) {
		t.Errorf("short cut a character: %q", got)
	}
}

// TestCapped: past maxShown diagnostics, one last line says how many more
// there are, as an error when any of them is one.
func TestCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("runcmd: [x]\nkubernetes:\n  tls-san:\n")
	for i := 0; i < 70; i++ {
		fmt.Fprintf(&b, "    - \"bad name %d\"\n", i)
	}
	_, diags := Load(src("c", b.String()))
	if len(diags) != maxShown+1 {
		t.Fatalf("%d diagnostics, want %d:\n%s", len(diags), maxShown+1, messages(diags))
	}
	if got, want := diags[maxShown].String(), "c: error: and 21 more problems not shown; fix the ones above and check again"; got != want {
		t.Errorf("last line = %q, want %q", got, want)
	}
}

// TestDocumentLimits: the documents refused before they are parsed, with
// the line and column a user looks at.
func TestDocumentLimits(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"too much structure", repeatTo(3*maxStructure, "hostname: a\nkubernetes:\n  tls-san: [", "a,", "]\n"),
			"c:3:80004: error: document has more than 40000 of the characters that start YAML values (,:-?[{) by here; cairn refuses it unparsed"},
		{"invalid UTF-8", "hostname: a\nkubernetes:\n  node-name: \"caf\xe9\"\n",
			"c:3:18: error: byte 0xE9 is not UTF-8 text; a cloud-config is UTF-8: fix the character here or save the file as UTF-8"},
		{"invalid UTF-8 after a multi-byte character", "hostname: é\xff\n", "c:1:12: error: byte 0xFF is not UTF-8"},
		{"UTF-16", "\xff\xfeh\x00", "c:1:1: error: document is UTF-16 text; cairn reads UTF-8: save the file as UTF-8"},
		{"tab indentation", "kubernetes:\n  role: agent\n\ttoken: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n",
			"c:3:1: error: this line is indented with a tab; YAML indents with spaces only: replace the tab with spaces"},
		{"tab after spaces", "kubernetes:\n  role: agent\n  \ttoken: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n", "c:3:3: error: this line is indented with a tab"},
		{"expanded bytes", repeatTo(300<<10, "kubernetes:\n  tls-san: [&v \""+strings.Repeat("x", 256<<10)+"\"", ",*v", "]\n"),
			"error: document's aliases expand it to more than 8 MiB; cairn refuses it: repeat long values less often"},
		{"expanded values", repeatTo(45000, "kubernetes:\n  tls-san: [&v x", ",*v", "]\n"),
			"error: document has more than 10000 values, aliases expanded; cairn refuses it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(src("c", tt.doc))
			if len(diags) != 1 || !strings.Contains(diags[0].String(), tt.want) {
				t.Errorf("want one line with %q, got:\n%s", tt.want, messages(diags))
			}
		})
	}
}

// TestReadLimited: every kind of input stops at MaxDocumentSize.
func TestReadLimited(t *testing.T) {
	if _, err := ReadLimited(zeros{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadLimited of an endless reader: %v, want ErrTooLarge", err)
	}
	if _, err := ReadFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "/dev/zero: the document is larger than the 4 MiB a cloud-config may have") {
		t.Errorf("ReadFile(/dev/zero) = %v", err)
	}
	data, err := ReadLimited(strings.NewReader(strings.Repeat("a", MaxDocumentSize)))
	if err != nil || len(data) != MaxDocumentSize {
		t.Errorf("ReadLimited of exactly MaxDocumentSize: %d bytes, %v", len(data), err)
	}
}

// zeros is a reader that never ends.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
