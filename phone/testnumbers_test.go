package phone

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTestNumbers(t *testing.T) {
	got, err := ParseTestNumbers("+49 151 12345678=123456, +4915112345679=654321\n# a comment\n\n+33 6 12 34 56 78 = 000000 # trailing")
	if err != nil {
		t.Fatal(err)
	}
	want := TestNumbers{"+4915112345678": "123456", "+4915112345679": "654321", "+33612345678": "000000"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for n, c := range want {
		if got[n] != c {
			t.Errorf("%s: code %q, want %q", n, got[n], c)
		}
	}
	if l := got.Numbers(); strings.Join(l, ",") != "+33612345678,+4915112345678,+4915112345679" {
		t.Errorf("Numbers() = %v", l)
	}
}

func TestParseTestNumbersRefusesWhatIsNotAPair(t *testing.T) {
	for text, want := range map[string]string{
		"+4915112345678":                                "has no code",
		"+4915112345678=12345":                          "must be 6 digits",
		"+4915112345678=12345a":                         "must be 6 digits",
		"0151 1234567=123456":                           "national format",
		"+4915112345678=1,+4915112345678=2":             "must be 6 digits",
		"+4915112345678=111111,+49 151 12345678=222222": "given twice",
	} {
		_, err := ParseTestNumbers(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTestNumbers(%q) = %v, want an error saying %q", text, err, want)
		}
	}
}

func TestLoadTestNumbersReadsPairsOrAFile(t *testing.T) {
	if n, err := LoadTestNumbers(""); err != nil || len(n) != 0 {
		t.Fatalf("empty: %v, %v", n, err)
	}
	path := filepath.Join(t.TempDir(), "numbers.txt")
	if err := os.WriteFile(path, []byte("# staging\n+4915112345678=123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := LoadTestNumbers(path); err != nil || n["+4915112345678"] != "123456" {
		t.Fatalf("file: %v, %v", n, err)
	}
	if _, err := LoadTestNumbers(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "cannot read the test numbers file") {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	if _, err := LoadTestNumbers(empty); err == nil || !strings.Contains(err.Error(), "holds no number") {
		t.Errorf("empty file: %v", err)
	}
}
