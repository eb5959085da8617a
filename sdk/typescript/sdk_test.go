//go:build unix

// Package sdk_test runs the TypeScript SDK's own tests (node --test) against
// a real userphone binary, so the SDK, its generated types and the server
// cannot drift apart unnoticed.
package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pace/userphone/internal/testenv"
)

// The generate script must write here, so the test can point it elsewhere.
const schemaFile = "src/schema.d.ts"

func TestTypeScriptSDKRunsTheWholeFlow(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool, err)
		}
	}
	sdkDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()

	step(t, "npm ci", func() { npmCI(t, sdkDir) })
	step(t, "npm run build", func() { npm(t, sdkDir, 2*time.Minute, nil, "run", "build") })
	step(t, "npm run generate reproduces "+schemaFile, func() { checkGenerated(t, sdkDir, tmp) })

	var bin string
	step(t, "go build ./cmd/userphone", func() { bin = testenv.BuildUserphone(t) })

	// Straight against a server, and through a Prism proxy in front of
	// another; each server has its own data, so the limits per number
	// never meet.
	for _, viaPrism := range []bool{false, true} {
		name := "straight"
		if viaPrism {
			name = "through Prism"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			var base string
			step(t, "start the server", func() {
				base = testenv.StartUserphone(t, bin, map[string]string{"USERPHONE_DATA_DIR": dataDir,
					"USERPHONE_TEST_NUMBERS": stagingTestNumber}) + "/user/2021-2"
			})
			var prism *prismProxy
			if viaPrism {
				step(t, "start Prism", func() { prism = startPrism(t, sdkDir, base) })
				base = prism.url
			}
			vars := map[string]string{
				"USERPHONE_SDK_BASE_URL": base,
				"USERPHONE_SDK_DATA_DIR": dataDir,
				"USERPHONE_SDK_BIN":      bin,
				// The README's staging test (test/staging.test.ts).
				"STAGING_API_URL": base,
				"STAGING_TOKEN":   mintToken(t, bin, dataDir, "staging-"+name),
			}
			if viaPrism {
				vars["USERPHONE_SDK_VIA_PRISM"] = "1"
			}
			step(t, "npm test", func() { npm(t, sdkDir, 2*time.Minute, vars, "test") })
			if prism != nil {
				prism.checkNoViolations(t)
			}
		})
	}
}

// stagingTestNumber is the test number of the README's staging test.
const stagingTestNumber = "+4915112340001=424242"

// mintToken returns a dev token for a new user sub, from `userphone token`.
func mintToken(t *testing.T, bin, dataDir, sub string) string {
	t.Helper()
	cmd := exec.Command(bin, "token", "--sub", strings.ReplaceAll(sub, " ", "-"), "--email", "staging@example.com")
	cmd.Env = testenv.Environ(map[string]string{"USERPHONE_DATA_DIR": dataDir})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("userphone token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// The README shows the staging test word for word, from its first import
// to its end: what a frontend team copies is what runs here.
func TestTheREADMEShowsTheStagingTestAsItRuns(t *testing.T) {
	file, err := os.ReadFile("test/staging.test.ts")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	recipe := string(file)[strings.Index(string(file), "import "):]
	if !strings.Contains(string(readme), "```ts\n"+recipe+"```") {
		t.Fatalf("README.md does not show sdk/typescript/test/staging.test.ts as it is, from its first import:\n%s", recipe)
	}
}

// step runs f and logs how long it took.
func step(t *testing.T, name string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	t.Logf("%s: %v", name, time.Since(start).Round(time.Millisecond))
}

// npmCI installs the locked dependencies unless node_modules already holds
// exactly this lock file's install: a stamp records the lock file's hash
// and the Node version after a successful npm ci, which removes
// node_modules (and so the stamp) first.
func npmCI(t *testing.T, sdkDir string) {
	lock, err := os.ReadFile(filepath.Join(sdkDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	nodeVersion, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	sum := sha256.Sum256(append(lock, nodeVersion...))
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(sdkDir, "node_modules", ".userphone-sdk-installed")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		t.Log("node_modules matches package-lock.json: npm ci skipped")
	} else {
		// No scripts: no locked package needs one, and none should run in CI.
		npm(t, sdkDir, 5*time.Minute, nil, "ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund")
		if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Go walks node_modules for ./... (it skips only ., _ and testdata):
	// a package that ships .go files would break go vet ./... and go test ./...
	err = filepath.WalkDir(filepath.Join(sdkDir, "node_modules"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			t.Errorf("%s: a .go file in node_modules breaks go ./... patterns", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkGenerated runs package.json's generate script with its output
// pointed at a temporary file and compares that with the committed one.
func checkGenerated(t *testing.T, sdkDir, tmp string) {
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	raw, err := os.ReadFile(filepath.Join(sdkDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	script := pkg.Scripts["generate"]
	if strings.Count(script, " -o "+schemaFile) != 1 {
		t.Fatalf("the generate script %q does not write %s with -o", script, schemaFile)
	}
	out := filepath.Join(tmp, "schema.d.ts")
	npm(t, sdkDir, time.Minute, nil, "exec", "--offline", "--call", strings.Replace(script, " -o "+schemaFile, " -o "+out, 1))
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(sdkDir, schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Fatalf("%s is stale: run npm run generate in sdk/typescript and commit the result", schemaFile)
	}
}

// npm runs npm in dir with the given variables on top of an environment
// without USERPHONE_* (a developer's settings must not reach the server's
// CLI through the tests), and fails the test with npm's output if it fails.
func npm(t *testing.T, dir string, timeout time.Duration, vars map[string]string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = testenv.Environ(vars)
	var out testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// npm starts node, which starts a process per test file: on a timeout
	// the whole group goes, and Wait does not hang on their pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil || testing.Verbose() {
		t.Logf("npm %s:\n%s", strings.Join(args, " "), out.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("npm %s did not finish within %v", strings.Join(args, " "), timeout)
	}
	if err != nil {
		t.Fatalf("npm %s: %v", strings.Join(args, " "), err)
	}
}
