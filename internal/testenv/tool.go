package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ToolBinary returns the path of a tool the tests run as a process (Ory
// Hydra, mailpit): $env, or $(go env GOPATH)/bin/name as its install
// script builds it. It returns an error, naming the script and env, if
// there is no executable file there.
func ToolBinary(env, name, installScript string) (string, error) {
	bin := os.Getenv(env)
	if bin == "" {
		bin = filepath.Join(GopathBin(), name)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("%w (build it with %s, or set %s)", err, installScript, env)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", bin)
	}
	return bin, nil
}

// GopathBin is where `go install` and the install scripts put binaries:
// the first GOPATH entry's bin.
func GopathBin() string {
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin")
}

// StopGroup ends a process started as the leader of its own process
// group (Setpgid), with what it started: SIGTERM to the group, SIGKILL
// after grace. exited receives the process's Wait. It reports whether
// the process stopped within grace.
func StopGroup(cmd *exec.Cmd, exited chan error, grace time.Duration) bool {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
		return true
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return false
	}
}

// AnswersOK reports whether a GET of url answers 200: how the tests ask
// a server they started whether it is ready.
func AnswersOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls ready every 20 ms until it reports true, and fails t
// if the process whose Wait exited receives ends first or ready is not
// true within. what names the process; log, when not nil, gives its
// output for the failure.
func WaitReady(t testing.TB, what string, exited chan error, within time.Duration, ready func() bool, log func() string) {
	t.Helper()
	output := func() string {
		if log == nil {
			return ""
		}
		return "\n" + log()
	}
	deadline := time.Now().Add(within)
	for {
		select {
		case err := <-exited:
			exited <- err // for whoever stops it
			t.Fatalf("%s exited before it was ready: %v%s", what, err, output())
		default:
		}
		if ready() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within %s%s", what, within, output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
