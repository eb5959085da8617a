package testenv

import (
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port free at the moment.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// GoCommand returns the go command that runs the tests, to build binaries.
func GoCommand(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("cannot find the go command to build the binary: %v", err)
	}
	return p
}

// BuildUserphone builds cmd/userphone into the test's temporary directory,
// with extra go build flags, and returns the binary's path.
func BuildUserphone(t testing.TB, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "userphone")
	args := append(append([]string{"build"}, flags...), "-o", bin, "github.com/pace/userphone/cmd/userphone")
	if out, err := exec.Command(GoCommand(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Environ is this process's environment without a developer's USERPHONE_*
// settings, which must not reach a server under test, plus vars.
func Environ(vars map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USERPHONE_") {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// StartUserphone starts `bin serve` on a free loopback port with vars on
// top of Environ, waits until it is ready, and stops it with SIGTERM when
// the test ends. The metrics listener is off unless vars sets it: its
// default port would be shared by the servers of parallel tests. The
// server's output is shown if the test failed, and a line it logged at
// level ERROR fails the test.
func StartUserphone(t testing.TB, bin string, vars map[string]string) (base string) {
	t.Helper()
	addr := FreeAddr(t)
	all := map[string]string{"USERPHONE_METRICS_ADDR": ""}
	maps.Copy(all, vars)
	all["USERPHONE_ADDR"] = addr
	cmd := exec.Command(bin, "serve")
	cmd.Env = Environ(all)
	var log SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Error("the server did not stop within 20 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("server output:\n%s", log.String())
		} else if strings.Contains(log.String(), "level=ERROR") {
			t.Errorf("the server logged errors:\n%s", log.String())
		}
	})

	base = "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("the server exited before it was ready: %v", err)
		default:
		}
		if AnswersOK(base + "/health/ready") {
			return base
		}
		if time.Now().After(deadline) {
			t.Fatal("the server was not ready within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitStatus polls url until it answers status, at most within. It
// reports a miss with t.Errorf and returns false rather than stopping the
// test, so that a caller with more to check (the fault suite, which goes
// on to the next replica and shows the logs) can; one that cannot go on
// stops with t.FailNow.
func WaitStatus(t testing.TB, url string, status int, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	last := 0
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if last = resp.StatusCode; last == status {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s did not answer %d within %v (last %d)", url, status, within, last)
	return false
}
