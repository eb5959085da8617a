package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pace/userphone/internal/testenv"
)

// version needs no configuration, and names the build and the contract.
func TestVersionPrintsTheVersionCommitAndSpec(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// A setting that would stop serve must not matter to version.
	code := run(context.Background(), []string{"version"}, env(map[string]string{"USERPHONE_ADDR": "nonsense"}), &stdout, &stderr)
	out := stdout.String()
	if code != 0 || stderr.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	for _, want := range []string{"userphone ", "\ncommit  ", "\nspec    PACE Cloud User API", " 2021-2 (sha256 ", "\ngo      go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}

// A binary built from a git checkout names its commit.
func TestVersionOfABuiltBinaryNamesItsCommit(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		testenv.Missing(t, "git and a git checkout", err)
	}
	if fi, err := os.Stat(filepath.Join("..", "..", ".git")); err == nil && !fi.IsDir() {
		t.Skip("a git worktree (.git is a file): go build stamps no VCS information there")
	}
	// -buildvcs=true: some machines set GOFLAGS=-buildvcs=false.
	bin := testenv.BuildUserphone(t, "-buildvcs=true")
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "commit  " + strings.TrimSpace(string(head)); !strings.Contains(string(out), want) {
		t.Fatalf("version says\n%s\nwant a line %q", out, want)
	}
}
