package etcdsnap

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// What `cairn etcd-snapshot list` prints from the record: newest first,
// the servers' entries and hand-edited junk left out.
func TestListFromRecord(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	snaps := []Snapshot{
		{Node: "s1", Name: "etcd-snapshot-s1-1765022400", Path: "/var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765022400", Size: 20512, Time: at},
		{Node: "s2", Name: "etcd-snapshot-s2-1765065600.zst", Path: "/var/lib/cairn/etcd-snapshots/etcd-snapshot-s2-1765065600.zst", Size: 3 << 20, Time: at.Add(12 * time.Hour), Request: "r1"},
	}
	data := map[string]string{ServerKey("s1"): Entry(Server{Node: "s1", Request: "r1", Error: "etcd at https://127.0.0.1:2379 does not answer"}),
		"notes": "hand-written", "etcd-snapshot-x-1": `{"node":"x","name":"another-name"}`}
	for _, s := range snaps {
		data[s.Key()] = Entry(s)
	}
	raw, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": "7", "annotations": map[string]string{RequestAnnotation: "r1"}}, "data": data})
	rec, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Request != "r1" || rec.ResourceVersion != "7" || len(rec.Servers) != 1 || rec.Servers[0].Error == "" {
		t.Errorf("the record: %+v", rec)
	}
	var b bytes.Buffer
	WriteList(&b, rec)
	want := `NAME                             NODE  LOCATION                                                              SIZE      CREATED
etcd-snapshot-s2-1765065600.zst  s2    file:///var/lib/cairn/etcd-snapshots/etcd-snapshot-s2-1765065600.zst  3.0 MiB   2026-12-07T00:00:00Z
etcd-snapshot-s1-1765022400      s1    file:///var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765022400      20.0 KiB  2026-12-06T12:00:00Z
`
	if b.String() != want {
		t.Errorf("list prints:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := Describe(Answer{Node: "s2", Snapshot: &rec.Snapshots[0]}); got != "s2: /var/lib/cairn/etcd-snapshots/etcd-snapshot-s2-1765065600.zst (3.0 MiB, sha256 )" {
		t.Errorf("save prints %q", got)
	}
	if got := Describe(Answer{Node: "s1", Error: "etcd at x does not answer"}); got != "s1: no snapshot: etcd at x does not answer" {
		t.Errorf("save prints %q", got)
	}
	if k := ServerKey(strings.Repeat("n", 300)); len(k) != 253 {
		t.Errorf("a long node's key is %d characters; a ConfigMap takes 253", len(k))
	}
}
