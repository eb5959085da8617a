// Package mailpittest runs mailpit (v1.33.1), a real SMTP server with an
// HTTP API to read what it received, for tests: Start runs it on free
// loopback ports with a database in the test's temporary directory, and
// stops it when the test ends. The service sends to SMTPURL (as
// USERPHONE_SMTP_URL); the contract test reads the mailbox at APIURL
// (as -mailpit-url), as QA's staging set-up does.
//
//	m := mailpittest.Start(t)
//	// USERPHONE_SMTP_URL=m.SMTPURL(), contract-test -mailpit-url m.APIURL()
//
// mailpit is the binary that scripts/mailpit/install.sh builds; where it
// is missing the test skips, or fails under USERPHONE_TEST_STRICT=1.
package mailpittest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pace/userphone/internal/testenv"
)

// Version is the mailpit version that scripts/mailpit/install.sh builds.
const Version = "v1.33.1"

// BinaryEnv names the variable that overrides where the mailpit binary
// is; .ci/run sets it to what install.sh printed.
const BinaryEnv = "USERPHONE_TEST_MAILPIT"

// Binary returns the path of the mailpit binary: $USERPHONE_TEST_MAILPIT,
// or $(go env GOPATH)/bin/mailpit-v1.33.1 as scripts/mailpit/install.sh
// builds it. It returns an error if there is no executable file there.
func Binary() (string, error) {
	return testenv.ToolBinary(BinaryEnv, "mailpit-"+Version, "scripts/mailpit/install.sh")
}

// Server is a running mailpit.
type Server struct {
	smtpAddr, apiAddr string
	log               testenv.SyncBuffer
}

// SMTPAddr is the SMTP server's host:port.
func (s *Server) SMTPAddr() string { return s.smtpAddr }

// SMTPURL is the smtp:// URL of the SMTP server, for USERPHONE_SMTP_URL.
// It takes no password and offers no STARTTLS, which the service allows
// on loopback.
func (s *Server) SMTPURL() string { return "smtp://" + s.smtpAddr }

// APIURL is the base of the HTTP API (/api/v1/...), for -mailpit-url.
func (s *Server) APIURL() string { return "http://" + s.apiAddr }

// Start starts mailpit, waits until both ports answer, and stops it when
// the test ends. Its output is logged if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		testenv.Missing(t, "mailpit "+Version, err)
	}
	s := &Server{smtpAddr: testenv.FreeAddr(t), apiAddr: testenv.FreeAddr(t)}
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--smtp", s.smtpAddr, "--listen", s.apiAddr,
		"--database", filepath.Join(dir, "mailpit.db"),
		// No calls out: neither the release check nor reverse DNS.
		"--disable-version-check", "--smtp-disable-rdns")
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("mailpit: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		testenv.StopGroup(cmd, exited, 10*time.Second)
		if t.Failed() {
			t.Logf("mailpit output:\n%s", s.log.String())
		}
	})
	// Ready when the API says so and the SMTP port accepts.
	testenv.WaitReady(t, "mailpit", exited, 30*time.Second, s.ready, s.log.String)
	return s
}

func (s *Server) ready() bool {
	if !testenv.AnswersOK(s.APIURL() + "/readyz") {
		return false
	}
	c, err := net.DialTimeout("tcp", s.smtpAddr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
