package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pace/userphone/internal/mailpittest"
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

// TestREADMEStagingRecipes runs the README's staging set-up (mailpit and a
// server with test numbers) and then its contract-test command, as
// written. Only the ports, the binary and the install script's path are
// swapped in, so that the test can run beside a developer's own servers.
func TestREADMEStagingRecipes(t *testing.T) {
	mailpit, err := mailpittest.Binary()
	if err != nil {
		testenv.Missing(t, "mailpit", err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	swap := strings.NewReplacer("go run ./cmd/userphone", testenv.BuildUserphone(t),
		"bash scripts/mailpit/install.sh", "bash "+filepath.Join(repo, "scripts/mailpit/install.sh"),
		"127.0.0.1:1025", testenv.FreeAddr(t), "127.0.0.1:8025", testenv.FreeAddr(t), "127.0.0.1:8080", addr)
	setup := swap.Replace(readmeBlock(t, "### A staging set-up with mailpit", "```sh\n"))
	check := swap.Replace(readmeBlock(t, "### For QA teams", "```sh\n"))
	dir := t.TempDir()
	// The server's defaults, but for the address and the metrics listener,
	// which a developer's own server may hold.
	vars := map[string]string{"MAILPIT_BIN": mailpit, "USERPHONE_ADDR": addr, "USERPHONE_METRICS_ADDR": ""}

	servers := readmeScript(dir, vars, setup)
	servers.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // mailpit and the server, stopped together
	// A file, not a pipe: the script ends while what it started in the
	// background goes on writing.
	serverLog, err := os.Create(filepath.Join(dir, "servers.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer serverLog.Close()
	servers.Stdout, servers.Stderr = serverLog, serverLog
	runErr := servers.Run()
	t.Cleanup(func() {
		_ = syscall.Kill(-servers.Process.Pid, syscall.SIGTERM)
		time.Sleep(500 * time.Millisecond)
		if log, _ := os.ReadFile(serverLog.Name()); t.Failed() {
			t.Logf("mailpit and server output:\n%s", log)
		}
	})
	if runErr != nil {
		t.Fatalf("the set-up failed: %v", runErr)
	}
	waitReady(t, "http://"+addr)

	out, err := readmeScript(dir, nil, check).CombinedOutput()
	t.Logf("contract-test output:\n%s", out)
	if err != nil || !strings.HasSuffix(string(out), " passed, 0 failed, 0 skipped\n") {
		t.Fatalf("the README's contract-test run failed (%v), or skipped a step", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "contract-test.xml")); err != nil {
		t.Fatalf("no JUnit report: %v", err)
	}
}

// readmeBlock returns the first block that opens with fence after the
// README's heading.
func readmeBlock(t *testing.T, heading, fence string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i:]
	start := strings.Index(s, fence)
	end := strings.Index(s[start+len(fence):], "```")
	if start < 0 || end < 0 {
		t.Fatalf("README's %q has no %s block", heading, strings.TrimSpace(fence))
	}
	return s[start+len(fence) : start+len(fence)+end]
}

// readmeScript is bash running script in dir, with vars added to the
// environment.
func readmeScript(dir string, vars map[string]string, script string) *exec.Cmd {
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = testenv.Environ(vars)
	return cmd
}

// readmeCommand returns the arguments of the README's command in the first
// sh block after heading, after command, with swap applied.
func readmeCommand(t *testing.T, heading, command string, swap *strings.Replacer) []string {
	t.Helper()
	block := swap.Replace(readmeBlock(t, heading, "```sh\n"))
	args, ok := strings.CutPrefix(strings.ReplaceAll(block, "\\\n", " "), command+" ")
	if !ok {
		t.Fatalf("README's block after %q does not start with %q:\n%s", heading, command, block)
	}
	return strings.Fields(args)
}
