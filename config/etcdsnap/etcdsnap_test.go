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

// With etcd-s3 the record holds each snapshot twice, the file on its
// server and its copy in S3: list shows both, the copy's location an
// s3:// URL; save's line names the copy, or a second line says why there
// is none.
func TestS3CopiesInRecord(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	file := Snapshot{Node: "s1", Name: "etcd-snapshot-s1-1765022400.zst", Path: "/var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765022400.zst", Size: 2 << 20, SHA256: "ab", Time: at, Request: "r1"}
	copied := file
	copied.Path, copied.S3 = "", "s3://backups/cluster-1/etcd-snapshot-s1-1765022400.zst"
	older := Snapshot{Node: "s1", Name: "etcd-snapshot-s1-1765000000.zst", S3: "s3://backups/cluster-1/etcd-snapshot-s1-1765000000.zst", Size: 1 << 20, Time: at.Add(-time.Hour)}
	data := map[string]string{ServerKey("s1"): Entry(Server{Node: "s1", Request: "r1"})}
	for _, s := range []Snapshot{copied, file, older} {
		data[s.Key()] = Entry(s)
	}
	// A copy's entry under its file's key is someone's hand edit: skipped.
	data["etcd-snapshot-s1-1"] = Entry(Snapshot{Node: "s1", Name: "etcd-snapshot-s1-1", S3: "s3://backups/etcd-snapshot-s1-1"})
	if copied.Key() != "s3_etcd-snapshot-s1-1765022400.zst" || file.Key() != file.Name {
		t.Errorf("keys %q and %q", copied.Key(), file.Key())
	}
	raw, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": "9"}, "data": data})
	rec, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	WriteList(&b, rec)
	want := `NAME                             NODE  LOCATION                                                              SIZE     CREATED
etcd-snapshot-s1-1765022400.zst  s1    file:///var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765022400.zst  2.0 MiB  2026-12-06T12:00:00Z
etcd-snapshot-s1-1765022400.zst  s1    s3://backups/cluster-1/etcd-snapshot-s1-1765022400.zst                2.0 MiB  2026-12-06T12:00:00Z
etcd-snapshot-s1-1765000000.zst  s1    s3://backups/cluster-1/etcd-snapshot-s1-1765000000.zst                1.0 MiB  2026-12-06T11:00:00Z
`
	if b.String() != want {
		t.Errorf("list prints:\n%s\nwant:\n%s", b.String(), want)
	}
	a := Answer{Node: "s1", Snapshot: &rec.Snapshots[0], S3: &rec.Snapshots[1]}
	if got := Describe(a); got != "s1: /var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765022400.zst (2.0 MiB, sha256 ab), copied to s3://backups/cluster-1/etcd-snapshot-s1-1765022400.zst" || DescribeS3(a) != "" {
		t.Errorf("save prints %q and %q", got, DescribeS3(a))
	}
	a = Answer{Node: "s1", Snapshot: &rec.Snapshots[0], S3Error: "The specified bucket does not exist."}
	if got := DescribeS3(a); got != "s1: etcd-snapshot-s1-1765022400.zst was not copied to S3: The specified bucket does not exist." {
		t.Errorf("save prints %q", got)
	}
}
