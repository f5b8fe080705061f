package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// manDoc is kubernetes.manifests with one manifest named web whose
// content's first line is line 5 of the document, at column 9.
func manDoc(content string) string {
	return "kubernetes:\n  manifests:\n    - name: web\n      content: |\n" + indent(content, "        ")
}

func indent(s, by string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "")
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
`

// TestManifestsCheck: each rule of kubernetes.manifests and of the
// manifests write_files writes, as the lines a user sees.
func TestManifestsCheck(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the printed diagnostics, in order
		ok   bool     // no errors expected
	}{
		{"two objects", manDoc(deployment + "---\n# a comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: apps}\ndata: {a: b}\n"), nil, true},
		{"JSON", "kubernetes:\n  manifests:\n    - name: cm\n      content: '{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}'\n", nil, true},
		{"empty: its objects are deleted", "kubernetes:\n  manifests:\n    - {name: gone, content: \"\"}\n", nil, true},
		{"a List", manDoc("apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n  - {apiVersion: v1, metadata: {name: b}}\n"),
			[]string{`c:9:13: error: kubernetes.manifests[0] (web): the object here has no kind; every object needs apiVersion, kind and metadata.name`}, false},
		{"no name", "kubernetes:\n  manifests:\n    - content: \"\"\n",
			[]string{`c:3:7: error: kubernetes.manifests[0] has no name; give it one, like name: my-app: its objects are labelled with it, and disable names it`}, false},
		{"a name that is no label", "kubernetes:\n  manifests:\n    - {name: My_App, content: \"\"}\n",
			[]string{`c:3:14: error: kubernetes.manifests[0].name "My_App" is not a manifest name: lowercase letters, digits, '-' and '.'`}, false},
		{"a name twice", "kubernetes:\n  manifests:\n    - {name: web, content: \"\"}\n    - {name: web, content: \"\"}\n",
			[]string{`c:4:14: error: kubernetes.manifests[1].name "web" is also the name of manifests[0]; give each manifest a name of its own`}, false},
		{"manifests as a mapping", "kubernetes:\n  manifests:\n    web: {content: \"\"}\n",
			[]string{`c:3:5: error: kubernetes.manifests must be a list of entries, not a mapping`}, false},
		{"an unknown key", "kubernetes:\n  manifests:\n    - {name: web, contents: \"\"}\n",
			[]string{`c:3:19: error: unknown key "contents" in kubernetes.manifests[0]; did you mean "content"?`}, false},
		{"an object without a name, located in its document", manDoc(deployment + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n"),
			[]string{`c:12:9: error: kubernetes.manifests[0] (web): the ConfigMap here has no metadata.name; every object needs apiVersion, kind and metadata.name`}, false},
		{"generateName", manDoc("apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: run-}\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): the Job here has no metadata.name (generateName cannot be applied`}, false},
		{"no apiVersion nor kind", manDoc("metadata: {name: a}\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): the object here has no apiVersion, kind; every object needs`}, false},
		{"not YAML", manDoc(deployment + "---\napiVersion: v1\nkind: [ConfigMap\n"),
			[]string{`c:13:9: error: kubernetes.manifests[0] (web): not valid YAML: did not find expected ',' or ']'`}, false},
		{"a document that is a list", manDoc("- a\n- b\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): the document is a list, not an object with apiVersion, kind and metadata`}, false},
		{"an object twice", manDoc(deployment + "---\n" + strings.Replace(deployment, "apps/v1", "apps/v1beta2", 1)),
			[]string{`c:12:9: error: kubernetes.manifests[0] (web): Deployment web: it is also at line 1; give each object once`}, false},
		{"a bad namespace", manDoc("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Apps}\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): ConfigMap Apps/a: metadata.namespace "Apps" is not a namespace name`}, false},
		{"a name with a slash", manDoc("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): ConfigMap a/b: metadata.name "a/b" cannot name an object`}, false},
		{"a bad apiVersion", manDoc("apiVersion: apps/v1/x\nkind: Deployment\nmetadata: {name: a}\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): Deployment a: apiVersion "apps/v1/x" is not GROUP/VERSION (like apps/v1) or v1`}, false},
		{"not JSON", manDoc("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: .inf}\n"),
			[]string{`c:5:9: error: kubernetes.manifests[0] (web): ConfigMap a: it cannot be sent as JSON`}, false},
		{"a quoted content is located at the string", "kubernetes:\n  manifests:\n    - name: web\n      content: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {}\\n\"\n",
			[]string{`c:4:16: error: kubernetes.manifests[0] (web): line 1 of its text: the ConfigMap here has no metadata.name`}, false},
		{"too large", "kubernetes:\n  manifests:\n    - name: web\n      content: \"" + strings.Repeat("x", MaxManifestSize+1) + "\"\n",
			[]string{`c:4:16: error: kubernetes.manifests[0] (web): it is larger than 2 MiB; split it into several manifests`}, false},
		{"with k3s", "kubernetes:\n  distribution: k3s\n  manifests:\n    - {name: web, content: \"\"}\n",
			[]string{`c:3:3: error: kubernetes.manifests is applied by cairn's own servers; k3s applies the files of its own directory: write each with write_files to /var/lib/rancher/k3s/server/manifests/NAME.yaml`}, false},
		{"on an agent", "kubernetes:\n  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n  manifests:\n    - {name: web, content: \"\"}\n",
			[]string{`c:5:3: warning: kubernetes.manifests is applied by the servers; agents ignore it`}, true},
		{"disable names a manifest", "kubernetes:\n  disable: [web, app]\n  manifests:\n    - {name: web, content: \"\"}\nwrite_files:\n  - {path: /var/lib/cairn/manifests/app.yml, content: \"\"}\n", nil, true},
		// The files write_files writes into the directory, located there.
		{"a file", "write_files:\n  - path: /var/lib/cairn/manifests/app.yaml\n    content: |\n      " + strings.ReplaceAll(deployment, "\n", "\n      ") + "---\n      kind: ConfigMap\n",
			[]string{`c:11:7: error: /var/lib/cairn/manifests/app.yaml: the ConfigMap here has no apiVersion, metadata`}, false},
		{"a file of another ending is none", "write_files:\n  - {path: /var/lib/cairn/manifests/notes.txt, content: \"[\"}\n", nil, true},
		{"a file whose name is no label", "write_files:\n  - {path: /var/lib/cairn/manifests/My_App.yaml, content: \"\"}\n",
			[]string{`c:2:12: warning: write_files[0] writes /var/lib/cairn/manifests/My_App.yaml, whose name "My_App" is not a manifest name`, `the servers skip it: rename the file`}, true},
		{"a file named as an inline manifest", "write_files:\n  - {path: /var/lib/cairn/manifests/web.json, content: \"\"}\nkubernetes:\n  manifests:\n    - {name: web, content: \"\"}\n",
			[]string{`c:2:12: warning: write_files[0] writes /var/lib/cairn/manifests/web.json, a manifest of the same name as kubernetes.manifests[0]; the servers apply the inline one and skip the file: rename one`}, true},
		{"a file with a Secret readable by all", "write_files:\n  - path: /var/lib/cairn/manifests/s.yaml\n    content: |\n      {apiVersion: v1, kind: Secret, metadata: {name: s}, stringData: {p: hunter2}}\n",
			[]string{`c:2:5: warning: write_files[0] writes the manifest /var/lib/cairn/manifests/s.yaml, which holds a Secret, readable by every user (mode 0644); give it permissions: "0600"`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load(src("c", tt.doc))
			got := messages(diags)
			if tt.ok == diags.HasErrors() || tt.ok != (cfg != nil) {
				t.Errorf("HasErrors() = %v, want %v; diagnostics:\n%s", diags.HasErrors(), !tt.ok, got)
			}
			wantInOrder(t, got, tt.want)
			if tt.want == nil && len(diags) > 0 {
				t.Errorf("unexpected diagnostics:\n%s", got)
			}
		})
	}
}

// TestParseManifest: the objects of a manifest and the lines their
// documents start on, a List's items one by one.
func TestParseManifest(t *testing.T) {
	text := "# leading comment\n" + deployment + "---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a, namespace: x}\n- {apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, metadata: {name: \"system:r\", creationTimestamp: 2024-01-01T00:00:00Z}}\n"
	objs, problems := ParseManifest([]byte(text))
	if problems != nil {
		t.Fatalf("problems: %v", problems)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.APIVersion()+" "+o.String()+" @"+strconv.Itoa(o.Line))
	}
	want := []string{"apps/v1 Deployment web @2", "v1 ConfigMap x/a @13", "rbac.authorization.k8s.io/v1 ClusterRole system:r @16"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("objects %q, want %q", got, want)
	}
	if spec, _ := objs[0].Object["spec"].(map[string]any); spec["replicas"] != 1 {
		t.Errorf("the Deployment's spec: %v", objs[0].Object["spec"])
	}
	_, problems = ParseManifest([]byte("kind: X\n---\napiVersion: v1\n"))
	if len(problems) != 2 || problems[0].Error() != "line 1: the X here has no apiVersion, metadata; every object needs apiVersion, kind and metadata.name" || problems[1].Line != 3 {
		t.Errorf("problems of two objects: %v", problems)
	}
}

// TestManifestsPrinted: a manifest that holds a Secret is redacted when
// the config is printed, and the printed config loads again; others are
// printed as they are.
func TestManifestsPrinted(t *testing.T) {
	doc := "kubernetes:\n  manifests:\n    - name: web\n      content: |\n" + indent(deployment, "        ") +
		"    - name: creds\n      content: |\n        {apiVersion: v1, kind: Secret, metadata: {name: s}, stringData: {password: hunter2}}\n" +
		"write_files:\n  - path: /var/lib/cairn/manifests/s.yaml\n    permissions: \"0600\"\n    content: |\n      {apiVersion: v1, kind: Secret, metadata: {name: t}, stringData: {password: hunter3}}\n"
	cfg, diags := Load(src("c", doc))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	out, err := cfg.Redacted().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter") || !strings.Contains(string(out), "replicas: 1") {
		t.Errorf("printed:\n%s", out)
	}
	again, diags := Load(src("printed", string(out)))
	if diags.HasErrors() || len(again.Kubernetes.Manifests) != 2 {
		t.Errorf("the printed config does not load again:\n%s\n%s", messages(diags), out)
	}
	if !strings.Contains(cfg.Kubernetes.Manifests[1].Content, "hunter2") {
		t.Error("Redacted changed the config it was called on")
	}
}
