package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// LogFile is an append-only log that rotates by size: name.log is renamed
// to name.log.1 (and .1 to .2, and so on, keeping Keep old files) once it
// would grow past Max bytes.
type LogFile struct {
	Path string
	Max  int64
	Keep int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Write appends p, rotating first when the file would grow past Max.
// Errors are returned but a service's output never blocks on them.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	if l.Max > 0 && l.size > 0 && l.size+int64(len(p)) > l.Max {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// Close closes the current file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func (l *LogFile) open() error {
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o750); err != nil {
		return fmt.Errorf("creating the log directory for %s: %w", l.Path, err)
	}
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening log %s: %w", l.Path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("reading the size of log %s: %w", l.Path, err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *LogFile) rotate() error {
	l.f.Close()
	l.f = nil
	keep := max(l.Keep, 1)
	os.Remove(fmt.Sprintf("%s.%d", l.Path, keep))
	for i := keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.Path, i), fmt.Sprintf("%s.%d", l.Path, i+1))
	}
	if err := os.Rename(l.Path, l.Path+".1"); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rotating log %s: %w", l.Path, err)
	}
	return l.open()
}
