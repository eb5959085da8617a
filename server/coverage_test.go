package server_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
)

// TestMain adds the contract coverage gate to this package's tests. Every
// response the tests receive is already checked against the spec as it
// arrives (an undocumented status fails its test); this adds the other
// half: when the whole package ran, every documented (operation, status)
// pair must have been produced by some test, or be marked as never
// answered in the spec (x-userphone-not-answered).
//
// The report is printed with -v or USERPHONE_CONTRACT_COVERAGE=1.
func TestMain(m *testing.M) {
	code := m.Run()
	report, missing, err := contract.Coverage()
	if err != nil {
		fmt.Println("contract coverage:", err)
		os.Exit(1)
	}
	if testing.Verbose() || os.Getenv("USERPHONE_CONTRACT_COVERAGE") != "" {
		fmt.Print(report)
	}
	if code != 0 || len(missing) == 0 {
		os.Exit(code)
	}
	switch {
	case !wholePackageRan():
		// -run, -skip or -fuzz chose some tests: coverage says nothing.
	case testenv.Skipped() > 0:
		fmt.Printf("contract coverage: %d documented pairs were not exercised, but %d tests were skipped for a missing part, so the run is incomplete: %s\n",
			len(missing), testenv.Skipped(), strings.Join(missing, ", "))
	default:
		fmt.Print(report)
		fmt.Printf("FAIL: contract coverage: no test produced %s. Add a test that does, or, if the service can never answer it, mark the response %s: true in openapi/userphone.yaml and say why in its description.\n",
			strings.Join(missing, ", "), contract.NotAnswered)
		os.Exit(1)
	}
	os.Exit(code)
}

func wholePackageRan() bool {
	for _, name := range []string{"test.run", "test.skip", "test.fuzz"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}
