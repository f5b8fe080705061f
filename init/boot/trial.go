package boot

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/config/files"
)

// Trial records an upgrade's trial boot on STATE (layout.TrialFile). The
// node writes it, synced, before the new slot's boot loader entry, so a
// slot whose entry exists and still counts tries is either an ordinary
// first boot (no Trial) or an upgrade on trial (a Trial naming it).
type Trial struct {
	// Upgrade and UID name the Upgrade object.
	Upgrade string `json:"upgrade"`
	UID     string `json:"uid,omitempty"`
	// Slot is the slot written; FromSlot the one that ran before.
	Slot     string `json:"slot"`
	FromSlot string `json:"fromSlot"`
	// Version is the new system's, FromVersion the old one's.
	Version     string `json:"version"`
	FromVersion string `json:"fromVersion"`
	// HealthTimeout bounds the trial (a Go duration).
	HealthTimeout string `json:"healthTimeout"`
	// Checks are Deployments ("ns/name") that must be available.
	Checks []string `json:"checks,omitempty"`
	// Result is why the new system was not kept, set by it before it
	// restarts into the old one; empty while the trial runs.
	Result string `json:"result,omitempty"`
}

// maxTrial bounds the trial record as read.
const maxTrial = 64 << 10

// ReadTrial reads the trial record at path; (nil, nil) when there is none.
func ReadTrial(path string) (*Trial, error) {
	data, err := files.Read(path, maxTrial)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var t Trial
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &t, nil
}

// WriteTrial writes the trial record to path, synced, with its directory.
func WriteTrial(path string, t *Trial) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeFileSync(path, append(data, '\n')); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// RemoveTrial removes the trial record, synced.
func RemoveTrial(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// entryVersion reads the version line of a loader entry; 0 when it has
// none.
func entryVersion(entry []byte) int64 {
	for _, line := range strings.Split(string(entry), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == "version" {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
