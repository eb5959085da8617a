//go:build unix

package sdk_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pace/userphone/internal/testenv"
)

// prismProxy is Prism (the npm package @stoplight/prism-cli, pinned in
// package.json) in proxy mode: it forwards every request to the server and
// checks request and answer against openapi/userphone.yaml on the way.
type prismProxy struct {
	url string // Prism serves the spec's paths without the base path
	log *testenv.SyncBuffer
}

// startPrism starts Prism in front of upstream (the server's API base URL)
// and stops it when the test ends.
func startPrism(t *testing.T, sdkDir, upstream string) *prismProxy {
	t.Helper()
	bin := filepath.Join(sdkDir, "node_modules", ".bin", "prism")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Prism is not installed: %v (npm ci in sdk/typescript installs it)", err)
	}
	addr := testenv.FreeAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	spec := filepath.Join(sdkDir, "..", "..", "openapi", "userphone.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "proxy", spec, upstream, "--host", host, "--port", port)
	cmd.Env = testenv.Environ(nil)
	p := &prismProxy{url: "http://" + addr, log: &testenv.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("Prism's output:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.log.String(), "Prism is listening") {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("Prism exited before it listened: %v\n%s", err, p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prism did not listen within 60 s:\n%s", p.log.String())
		}
	}
	return p
}

// Prism prints "Violation: request ..." or "Violation: response.body... ...".
var violationLine = regexp.MustCompile(`Violation: (\S+)`)

// checkNoViolations fails t if Prism found an answer off the spec, and
// checks that the requests went through it at all. Request violations are
// the error cases' deliberately bad requests; the Node test checks that the
// server refused each of them.
func (p *prismProxy) checkNoViolations(t *testing.T) {
	t.Helper()
	// Prism logs a violation a moment after its answer: wait until its log
	// has been quiet for half a second.
	out := p.log.String()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		now := p.log.String()
		if now == out {
			break
		}
		out = now
	}
	forwarded := strings.Count(out, "Forwarding")
	if forwarded < 15 {
		t.Errorf("only %d requests went through Prism; the flow did not run through it", forwarded)
	}
	requests := 0
	for _, m := range violationLine.FindAllStringSubmatch(out, -1) {
		if strings.HasPrefix(m[1], "response") {
			t.Errorf("Prism found an answer off the spec: %s", m[0])
		} else {
			requests++
		}
	}
	t.Logf("Prism forwarded %d requests; %d request violations (the error cases), 0 answers off the spec", forwarded, requests)
}

// The check above can fail: Prism in front of a server that answers off
// the spec reports it.
func TestPrismReportsAnAnswerOffTheSpec(t *testing.T) {
	sdkDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool, err)
		}
	}
	npmCI(t, sdkDir)
	offSpec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.api+json")
		io.WriteString(w, `{"data":{"type":"phone","id":"u1","attributes":{"verified":"yes"}}}`)
	}))
	defer offSpec.Close()
	prism := startPrism(t, sdkDir, offSpec.URL+"/user/2021-2")

	req, _ := http.NewRequest("GET", prism.url+"/user/phone", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("sl-violations"); !strings.Contains(h, `"response"`) || !strings.Contains(h, "verified") {
		t.Fatalf("sl-violations %q does not name the answer's bad field", h)
	}
	// Prism logs the violations a moment after it answered.
	for deadline := time.Now().Add(10 * time.Second); !violationLine.MatchString(prism.log.String()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Prism's log names no violation within 10 s:\n%s", prism.log.String())
		}
	}
}
