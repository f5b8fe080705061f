//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/qemu"
)

// maxMetrics bounds a /metrics reply (the apiserver's is a few MB).
const maxMetrics = 64 << 20

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text format; comment lines and lines
// it cannot read are skipped.
func parseMetrics(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

func parseSample(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, false
	}
	s.name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return s, false
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				if c == '"' {
					rest, closed = rest[j+1:], true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, false
			}
			s.labels[key] = val.String()
		}
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || math.IsNaN(v) {
		return s, false
	}
	s.value = v
	return s, true
}

// sumBy sums the samples named name per key(labels); samples for which
// key returns "" are left out.
func sumBy(ss []sample, name string, key func(map[string]string) string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		if s.name != name {
			continue
		}
		if k := key(s.labels); k != "" {
			out[k] += s.value
		}
	}
	return out
}

func all(map[string]string) string { return "all" }

// rates are counters' increases per second between two readings (a
// counter that went down restarted: its later value counts).
func rates(before, after map[string]float64, seconds float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		d := v - before[k]
		if d < 0 {
			d = v
		}
		out[k] = d / seconds
	}
	return out
}

// ranked is a map's entries, highest first, at most n of them.
type ranked struct {
	Key  string  `json:"key"`
	Rate float64 `json:"per_second"`
}

func top(m map[string]float64, n int) []ranked {
	var out []ranked
	for k, v := range m {
		if v > 0 {
			out = append(out, ranked{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rate != out[j].Rate {
			return out[i].Rate > out[j].Rate
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// scrapeNetns reads url (http://127.0.0.1:PORT/metrics) from inside a
// node's network namespace: kine and embedded etcd serve their metrics on
// the node's loopback only.
func scrapeNetns(ctx context.Context, netns, url string) ([]sample, error) {
	ns := &qemu.Netns{Name: netns}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxMetrics))
}

// scrapeAPIServer reads an apiserver's /metrics with the cluster's admin
// credentials.
func scrapeAPIServer(ctx context.Context, creds *kube.Credentials, addr string) ([]sample, error) {
	c := kube.New("https://"+addr+":6443", kube.Options{TLS: creds.TLS, Timeout: 30 * time.Second, MaxReply: maxMetrics})
	defer c.CloseIdleConnections()
	code, body, err := c.Raw(ctx, http.MethodGet, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("the apiserver at %s answered %d to /metrics", addr, code)
	}
	return parseMetrics(bytes.NewReader(body))
}

// apiRequestKey names an apiserver_request_total series by its verb and
// resource ("PUT leases.coordination.k8s.io").
func apiRequestKey(l map[string]string) string {
	r := l["resource"]
	if r == "" {
		return "" // non-resource URLs: /readyz, /metrics, /openapi
	}
	if l["group"] != "" {
		r += "." + l["group"]
	}
	if l["subresource"] != "" {
		r += "/" + l["subresource"]
	}
	return l["verb"] + " " + r
}

// What the benchmark counts of each datastore, as counters.
func kineCounters(ss []sample) map[string]float64 {
	return sumBy(ss, "kine_sql_total", func(l map[string]string) string { return l["name"] })
}

func etcdCounters(ss []sample) map[string]float64 {
	out := sumBy(ss, "grpc_server_handled_total", func(l map[string]string) string {
		if l["grpc_type"] != "unary" {
			return ""
		}
		return "gRPC " + l["grpc_method"]
	})
	for name, what := range map[string]string{
		"etcd_mvcc_range_total":                           "mvcc ranges",
		"etcd_mvcc_put_total":                             "mvcc puts",
		"etcd_mvcc_txn_total":                             "mvcc txns",
		"etcd_mvcc_delete_total":                          "mvcc deletes",
		"etcd_server_proposals_committed_total":           "raft proposals committed",
		"etcd_disk_wal_fsync_duration_seconds_count":      "WAL fsyncs",
		"etcd_disk_backend_commit_duration_seconds_count": "backend commits",
	} {
		for _, v := range sumBy(ss, name, all) {
			out[what] += v
		}
	}
	return out
}

// pgColumns are the counters of pg_stat_database the benchmark reads.
var pgColumns = []string{"xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated", "tup_deleted", "blks_hit", "blks_read"}

// postgresCounters reads pg_stat_database's counters of the database
// kine, through the server's socket in dir (local connections are trusted
// there; no password is involved).
func postgresCounters(ctx context.Context, dir string) (map[string]float64, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	if len(bins) == 0 {
		return nil, errors.New("psql is not installed (Debian's postgresql-client)")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q := "SELECT " + strings.Join(pgColumns, ", ") + " FROM pg_stat_database WHERE datname = 'kine'"
	cmd := exec.CommandContext(ctx, bins[len(bins)-1], "-X", "-A", "-t", "-F", "|", "-h", dir, "-U", "postgres", "-d", "kine", "-c", q)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGCONNECT_TIMEOUT=10"}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("psql on %s: %v: %s", dir, err, clip(strings.TrimSpace(string(out)), 200))
	}
	return parsePGRow(string(out))
}

func parsePGRow(out string) (map[string]float64, error) {
	f := strings.Split(strings.TrimSpace(out), "|")
	if len(f) != len(pgColumns) {
		return nil, fmt.Errorf("pg_stat_database answered %q; want %d numbers", clip(out, 200), len(pgColumns))
	}
	m := map[string]float64{}
	for i, c := range pgColumns {
		v, err := strconv.ParseFloat(strings.TrimSpace(f[i]), 64)
		if err != nil {
			return nil, fmt.Errorf("pg_stat_database %s %q: not a number", c, f[i])
		}
		m[c] = v
	}
	return m, nil
}
