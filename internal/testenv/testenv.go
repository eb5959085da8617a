// Package testenv owns how tests treat parts of the machine they need
// (PostgreSQL, Chromium): skip with a reason when a part is missing, or fail
// when USERPHONE_TEST_STRICT=1 says the run must use every part; and how
// tests build and run the userphone binary as a process (process.go); and
// the small tools of timing that tests share: a clock moved by hand
// (clock.go) and calls released at once to race (parallel.go).
package testenv

import (
	"bytes"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Strict reports whether missing parts must fail the run.
func Strict() bool { return os.Getenv("USERPHONE_TEST_STRICT") == "1" }

// Missing skips the test, or fails it under USERPHONE_TEST_STRICT=1.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s is missing and USERPHONE_TEST_STRICT=1 requires it: %v", what, err)
	}
	skipped.Add(1)
	t.Skipf("skipped: %s is missing (%v); set it up, or see .ci/run", what, err)
}

var skipped atomic.Int64

// Skipped reports how many tests of this binary Missing skipped: a run
// that skipped some is incomplete, and gates that need every test (contract
// coverage) say so instead of failing.
func Skipped() int64 { return skipped.Load() }

// SyncBuffer is a bytes.Buffer that a server goroutine may write while the
// test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
