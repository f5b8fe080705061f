package jointest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cairn-os/cairn/config/join"
)

// recordSecret is what the fake server publishes for joining servers.
type recordSecret struct {
	record  []byte
	members []string
	// queries are the query strings the record was read with.
	queries []string
}

// SetRecord publishes the sealed cluster record and the voting members'
// client URLs for joining servers (nil: none yet).
func (s *Server) SetRecord(record []byte, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record.record, s.record.members = record, members
}

// RecordQueries are the query strings the record was read with.
func (s *Server) RecordQueries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.record.queries...)
}

// serveRecord serves the record's Secret to the server token's bootstrap
// token (the Role the servers apply lets no one else read it).
func (s *Server) serveRecord(w http.ResponseWriter, r *http.Request) {
	server, ok := s.tokens[r.Header.Get("Authorization")]
	switch {
	case !ok:
		status(w, http.StatusUnauthorized, "Unauthorized")
		return
	case !server:
		status(w, http.StatusForbidden, "forbidden")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record.queries = append(s.record.queries, r.URL.RawQuery)
	if s.record.record == nil {
		status(w, http.StatusNotFound, "not found")
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"data": map[string][]byte{
		join.RecordKey: s.record.record, join.MembersKey: []byte(strings.Join(s.record.members, "\n"))}})
}
