package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/internal/testenv"
)

// TestREADMEWalkthrough runs the README's curl walk-through, as written,
// against a fresh server. Only the port and the binary are swapped in, so
// that the test can run beside a developer's own server.
func TestREADMEWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed", "grep", "tail"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool, err)
		}
	}
	script := walkthrough(t)
	dir := t.TempDir()
	bin := testenv.BuildUserphone(t)
	addr := testenv.FreeAddr(t)
	script = strings.ReplaceAll(script, "go run ./cmd/userphone", bin)
	script = strings.ReplaceAll(script, "127.0.0.1:8080", addr)

	ctx, cancel := context.WithCancel(context.Background())
	var serverLog testenv.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, env(map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_DATA_DIR": filepath.Join(dir, "data")}),
			os.Stdout, &serverLog)
	}()
	defer func() { cancel(); <-done }()
	waitReady(t, "http://"+addr)

	sctx, stop := context.WithTimeout(ctx, 2*time.Minute)
	defer stop()
	cmd := exec.CommandContext(sctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir // the script reads data/outbox.jsonl, as a newcomer's would
	out, err := cmd.CombinedOutput()
	t.Logf("walk-through output:\n%s", out)
	if err != nil {
		t.Fatalf("the walk-through failed: %v", err)
	}
	statuses := regexp.MustCompile(`→ (\d{3})`).FindAllStringSubmatch(string(out), -1)
	var got []string
	for _, s := range statuses {
		got = append(got, s[1])
	}
	if want := "201 200 201 200 200 200 200"; strings.Join(got, " ") != want {
		t.Fatalf("statuses %v, want %s", got, want)
	}
	last := string(out)[strings.LastIndex(string(out), `{"data"`):]
	if !strings.Contains(last, `"phoneNumber":"+4915798765432"`) || !strings.Contains(last, `"verified":true`) {
		t.Fatalf("the walk-through ends with %s, want the new number verified", last)
	}
	if strings.Contains(serverLog.String(), "level=ERROR") {
		t.Fatalf("the server logged errors:\n%s", serverLog.String())
	}
}

// walkthrough returns the README's first sh block after the walk-through's
// heading.
func walkthrough(t *testing.T) string {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "## A whole phone change with curl")
	if i < 0 {
		t.Fatal("README has no walk-through section")
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("README's walk-through has no sh block")
	}
	return s[start+6 : start+6+end]
}
