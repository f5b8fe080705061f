// Package etcdsnap is the contract of embedded etcd's snapshots between
// the servers that take them and `cairn etcd-snapshot`: the ConfigMap
// kube-system/cairn-etcd-snapshots records every snapshot the servers
// keep (one data entry each) and each server's answer to the last
// request; a request to take one now is an annotation on it. The CLI's
// side (Save, List) is here too, over config/kube.
package etcdsnap

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// Where the record lives and what marks a request.
const (
	Namespace  = "kube-system"
	RecordName = "cairn-etcd-snapshots"
	// RequestAnnotation holds the id of the last request to take a
	// snapshot now: every server on embedded etcd that has not answered
	// it takes one and records its answer.
	RequestAnnotation = "etcd-snapshot.cairn-os.github.io/request"
	// serverPrefix starts the data key of a server's entry; s3Prefix
	// that of a copy in S3 (an underscore starts no snapshot's name).
	serverPrefix = "server."
	s3Prefix     = "s3_"
	// FieldManager names the servers' and the CLI's writes.
	FieldManager = "cairn-etcd-snapshot"
)

// Path is the record's API path.
var Path = "/api/v1/namespaces/" + Namespace + "/configmaps/" + RecordName

// Snapshot is one snapshot a server keeps, as recorded.
type Snapshot struct {
	// Node is the server that took it and keeps it.
	Node string `json:"node"`
	// Name is its file name: NAME-NODE-UNIXTIME, .zip or .zst when
	// compressed, as k3s names them.
	Name string `json:"name"`
	// Path is the file on that server; empty for a copy in S3.
	Path string `json:"path"`
	// S3 is where a copy in S3 (etcd-s3) is, s3://BUCKET/FOLDER/NAME;
	// empty for the file at Path.
	S3 string `json:"s3,omitempty"`
	// Size is the file's size in bytes; SHA256 its digest.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Time is when it was taken.
	Time time.Time `json:"time"`
	// Request is the id of the request it answered; empty for one taken
	// on the schedule.
	Request string `json:"request,omitempty"`
}

// Server is a server's entry: it takes snapshots, and how it answered
// the last request.
type Server struct {
	Node string `json:"node"`
	// Request is the id of the last request it answered, Error why that
	// answer is not a snapshot, S3Error why its snapshot has no copy in
	// S3 (etcd-s3).
	Request string `json:"request,omitempty"`
	Error   string `json:"error,omitempty"`
	S3Error string `json:"s3Error,omitempty"`
}

// Record is the ConfigMap read: the snapshots, newest first, the servers,
// and the request last made.
type Record struct {
	Snapshots []Snapshot
	Servers   []Server
	Request   string
	// Exists is false when no server has made the ConfigMap yet.
	Exists bool
	// ResourceVersion is the ConfigMap's, to watch it from.
	ResourceVersion string
}

// Key is the data key of a snapshot's entry: its file name, after s3_
// for a copy in S3.
func (s Snapshot) Key() string {
	if s.S3 != "" {
		return s3Prefix + s.Name
	}
	return s.Name
}

// Location is where the snapshot is: file://PATH on its server, or
// s3://BUCKET/KEY.
func (s Snapshot) Location() string {
	if s.S3 != "" {
		return s.S3
	}
	return "file://" + s.Path
}

// ServerKey is the data key of node's entry. A ConfigMap's keys are at
// most 253 characters; a node name that long is shortened by a digest.
func ServerKey(node string) string {
	k := serverPrefix + node
	if len(k) > 253 {
		sum := sha256.Sum256([]byte(node))
		k = k[:253-17] + "-" + hex.EncodeToString(sum[:8])
	}
	return k
}

// ConfigMap is the record as it is first created: empty.
func ConfigMap() map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": RecordName, "namespace": Namespace}, "data": map[string]string{}}
}

// configMap is the part of the ConfigMap the record is read from.
type configMap struct {
	Metadata struct {
		ResourceVersion string            `json:"resourceVersion"`
		Annotations     map[string]string `json:"annotations"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

// Parse reads a record from the ConfigMap's JSON. An entry that does not
// parse is skipped: someone edited the ConfigMap by hand.
func Parse(raw []byte) (*Record, error) {
	var cm configMap
	if err := json.Unmarshal(raw, &cm); err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", Namespace, RecordName, err)
	}
	r := &Record{Exists: true, ResourceVersion: cm.Metadata.ResourceVersion, Request: cm.Metadata.Annotations[RequestAnnotation]}
	for k, v := range cm.Data {
		if strings.HasPrefix(k, serverPrefix) {
			var s Server
			if json.Unmarshal([]byte(v), &s) == nil && s.Node != "" {
				r.Servers = append(r.Servers, s)
			}
			continue
		}
		var s Snapshot
		if json.Unmarshal([]byte(v), &s) == nil && s.Node != "" && s.Name != "" && s.Key() == k {
			r.Snapshots = append(r.Snapshots, s)
		}
	}
	slices.SortFunc(r.Snapshots, func(a, b Snapshot) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.S3, b.S3) // the file, then its copy

	})
	slices.SortFunc(r.Servers, func(a, b Server) int { return strings.Compare(a.Node, b.Node) })
	return r, nil
}

// Read reads the record; one that does not exist yet is empty.
func Read(ctx context.Context, api *kube.Client) (*Record, error) {
	status, body, err := api.Raw(ctx, http.MethodGet, Path)
	if err != nil {
		return nil, err
	}
	switch {
	case status == http.StatusNotFound:
		return &Record{}, nil
	case status != http.StatusOK:
		return nil, kube.ReplyError(http.MethodGet, Path, status, body)
	}
	return Parse(body)
}

// Ensure creates the record when it does not exist yet.
func Ensure(ctx context.Context, api *kube.Client) error {
	err := api.Do(ctx, http.MethodPost, "/api/v1/namespaces/"+Namespace+"/configmaps?fieldManager="+FieldManager, ConfigMap(), nil)
	if err != nil && !kube.IsStatus(err, http.StatusConflict) {
		return fmt.Errorf("creating %s/%s: %w", Namespace, RecordName, err)
	}
	return nil
}

// Patch sets (a value) and deletes (nil) entries of the record's data
// with one merge patch: servers writing their own entries at once do not
// overwrite each other's.
func Patch(ctx context.Context, api *kube.Client, entries map[string]any) error {
	if len(entries) == 0 {
		return nil
	}
	err := api.MergePatch(ctx, Path+"?fieldManager="+FieldManager, map[string]any{"data": entries})
	if err != nil {
		return fmt.Errorf("recording in %s/%s: %w", Namespace, RecordName, err)
	}
	return nil
}

// Entry is the data value of v (a Snapshot or a Server).
func Entry(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// NewRequestID is a request's id: when it was made, and 48 random bits.
func NewRequestID(now time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%d-%s", now.Unix(), hex.EncodeToString(b[:]))
}

// Ask makes a request to take a snapshot now with id.
func Ask(ctx context.Context, api *kube.Client, id string) error {
	if err := Ensure(ctx, api); err != nil {
		return err
	}
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{RequestAnnotation: id}}}
	if err := api.MergePatch(ctx, Path+"?fieldManager="+FieldManager, patch); err != nil {
		return fmt.Errorf("asking for a snapshot on %s/%s: %w", Namespace, RecordName, err)
	}
	return nil
}

// Answer is one server's answer to a request: its snapshot, or why none;
// with etcd-s3, the snapshot's copy in S3, or why none.
type Answer struct {
	Node     string
	Snapshot *Snapshot
	Error    string
	S3       *Snapshot
	S3Error  string
}

// ErrNoServers is Save's error when no server takes snapshots.
var ErrNoServers = errors.New("no server of this cluster takes etcd snapshots: its servers keep the cluster in an external datastore (datastore-endpoint), or none has started yet")

// pollEvery is how often Save reads the record while it waits.
var pollEvery = time.Second

// Save asks every ready server that takes snapshots to take one now, and
// waits up to timeout for their answers, calling progress as each
// arrives. A server that has not answered by then is an Answer with
// Error saying so.
func Save(ctx context.Context, api *kube.Client, timeout time.Duration, progress func(Answer)) ([]Answer, error) {
	servers, err := readyServers(ctx, api)
	if err != nil {
		return nil, err
	}
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	id := NewRequestID(time.Now())
	if err := Ask(ctx, api, id); err != nil {
		return nil, err
	}
	waiting := slices.Clone(servers)
	var answers []Answer
	deadline := time.Now().Add(timeout)
	for len(waiting) > 0 {
		if time.Now().After(deadline) {
			for _, n := range waiting {
				a := Answer{Node: n, Error: fmt.Sprintf("no answer within %s: is its etcd or its apiserver down? Its console says why", timeout)}
				answers = append(answers, a)
				progress(a)
			}
			break
		}
		select {
		case <-ctx.Done():
			return answers, ctx.Err()
		case <-time.After(pollEvery):
		}
		rec, err := Read(ctx, api)
		if err != nil {
			continue // the apiserver may be busy; the deadline bounds this
		}
		for _, s := range rec.Servers {
			i := slices.Index(waiting, s.Node)
			if i < 0 || s.Request != id {
				continue
			}
			waiting = slices.Delete(waiting, i, i+1)
			a := Answer{Node: s.Node, Error: s.Error, S3Error: s.S3Error}
			if s.Error == "" {
				for _, snap := range rec.Snapshots {
					switch {
					case snap.Node != s.Node || snap.Request != id:
					case snap.S3 == "" && a.Snapshot == nil:
						a.Snapshot = &snap
					case snap.S3 != "" && a.S3 == nil:
						a.S3 = &snap
					}
				}
				if a.Snapshot == nil {
					a.Error = "it answered, but its snapshot is no longer recorded (retention removed it?)"
				}
			}
			answers = append(answers, a)
			progress(a)
		}
	}
	return answers, nil
}

// readyServers are the servers that take snapshots (they have an entry
// in the record) whose Node is Ready.
func readyServers(ctx context.Context, api *kube.Client) ([]string, error) {
	rec, err := Read(ctx, api)
	if err != nil {
		return nil, err
	}
	var nodes struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Conditions []kube.Condition `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	q := url.Values{"labelSelector": {upgrade.ServerLabel}}
	if err := api.WithMaxReply(32<<20).Get(ctx, "/api/v1/nodes?"+q.Encode(), &nodes); err != nil {
		return nil, fmt.Errorf("listing the servers' Nodes: %w", err)
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready[n.Metadata.Name] = true
			}
		}
	}
	var out []string
	for _, s := range rec.Servers {
		if ready[s.Node] {
			out = append(out, s.Node)
		}
	}
	return out, nil
}
