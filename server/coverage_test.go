package server_test

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pace/userphone/gen/api"
)

// seen records which documented (operation, status) pairs the tests
// produced. Every response is checked against the spec as it arrives, so an
// undocumented status already fails its test; this adds the other half: the
// documented pairs that no test exercised.
var seen = &pairs{m: map[string]bool{}}

type pairs struct {
	mu sync.Mutex
	m  map[string]bool
}

func (p *pairs) add(operationID string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[operationID+" "+strconv.Itoa(status)] = true
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() || os.Getenv("USERPHONE_CONTRACT_COVERAGE") != "" {
		report()
	}
	os.Exit(code)
}

// report prints each documented pair and whether a test produced it.
// Set USERPHONE_CONTRACT_COVERAGE=1 (or -v) to see it.
func report() {
	doc, err := api.GetSwagger()
	if err != nil {
		return
	}
	var lines []string
	missing := 0
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for status := range op.Responses.Map() {
				key := op.OperationID + " " + status
				mark := "ok     "
				if !seen.m[key] {
					mark, missing = "missing", missing+1
				}
				lines = append(lines, mark+" "+key)
			}
		}
	}
	sort.Strings(lines)
	fmt.Printf("contract coverage: %d of %d documented (operation, status) pairs exercised\n%s\n",
		len(lines)-missing, len(lines), strings.Join(lines, "\n"))
}
