// Package supervisetest records what a supervisor prints, for the tests
// of init/supervise and of the packages that run services on it.
package supervisetest

import (
	"slices"
	"sync"
)

// Lines records console lines; its Add is what supervise.Options' Log
// and Raw take. It is safe for concurrent use.
type Lines struct {
	mu sync.Mutex
	l  []string
}

// Add records the line s.
func (c *Lines) Add(s string) {
	c.mu.Lock()
	c.l = append(c.l, s)
	c.mu.Unlock()
}

// All is the lines so far, in order.
func (c *Lines) All() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.l)
}

// Index is where want stands among the lines so far, or -1.
func (c *Lines) Index(want string) int {
	return slices.Index(c.All(), want)
}
