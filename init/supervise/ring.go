package supervise

import "sync"

// Ring keeps the last Size bytes written to it: a service's recent output.
type Ring struct {
	mu   sync.Mutex
	buf  []byte
	next int  // where the next byte goes
	full bool // buf has wrapped at least once
	// total counts every byte ever written, kept or not.
	total int64
}

// NewRing returns a ring holding up to size bytes.
func NewRing(size int) *Ring {
	if size <= 0 {
		size = 1
	}
	return &Ring{buf: make([]byte, size)}
}

// Write keeps p's bytes, dropping the oldest ones when full. It never fails.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	r.total += int64(n)
	if len(p) >= len(r.buf) {
		copy(r.buf, p[len(p)-len(r.buf):])
		r.next, r.full = 0, true
		return n, nil
	}
	c := copy(r.buf[r.next:], p)
	if c < len(p) {
		copy(r.buf, p[c:])
		r.full = true
	}
	r.next = (r.next + len(p)) % len(r.buf)
	if r.next == 0 && len(p) > 0 {
		r.full = true
	}
	return n, nil
}

// Bytes returns a copy of what the ring holds, oldest first.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]byte(nil), r.buf[:r.next]...)
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

// Total is how many bytes were ever written to the ring.
func (r *Ring) Total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Since returns what the ring still holds of the bytes written after
// Total was mark.
func (r *Ring) Since(mark int64) []byte {
	b := r.Bytes()
	r.mu.Lock()
	n := r.total - mark
	r.mu.Unlock()
	if n < int64(len(b)) {
		b = b[int64(len(b))-max(n, 0):]
	}
	return b
}
