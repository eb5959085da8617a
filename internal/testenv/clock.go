package testenv

import (
	"sync"
	"time"
)

// Clock is a clock that tests move by hand, past cool-downs, windows and
// expiry, instead of waiting for them.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that starts at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now ticks a microsecond per call, as a real clock would between two
// requests, so that "newest" is well defined.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Microsecond)
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
