package apidocs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/internal/testenv"
)

// The committed swagger-ui/ must be exactly what `npm run vendor` makes
// from the locked swagger-ui-dist: the same files, byte for byte. The test
// installs the lock file in a temporary copy of this directory, so it
// leaves no node_modules here, and runs vendor.mjs into another directory.
func TestCommittedBundleIsTheLockedVersion(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool, err)
		}
	}
	tmp := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", ".npmrc", "vendor.mjs"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	run(t, tmp, "npm", "ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund")
	t.Logf("npm ci: %v", time.Since(start).Round(time.Millisecond))

	// package.json pins an exact version, and that is what got installed.
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, "package.json", &pkg)
	pinned := pkg.Dependencies["swagger-ui-dist"]
	if pinned == "" || strings.ContainsAny(pinned, "^~<>=*x ") {
		t.Fatalf("package.json must pin swagger-ui-dist to an exact version, not %q", pinned)
	}
	var installed struct {
		Version string `json:"version"`
	}
	readJSON(t, filepath.Join(tmp, "node_modules", "swagger-ui-dist", "package.json"), &installed)
	if installed.Version != pinned {
		t.Fatalf("npm ci installed swagger-ui-dist %s, package.json pins %s", installed.Version, pinned)
	}

	fresh := filepath.Join(tmp, "swagger-ui")
	run(t, tmp, "node", "vendor.mjs", fresh)
	want, got := tree(t, fresh), tree(t, "swagger-ui")
	for name, b := range want {
		switch c, ok := got[name]; {
		case !ok:
			t.Errorf("swagger-ui/%s is missing: run npm run vendor", name)
		case !bytes.Equal(c, b):
			t.Errorf("swagger-ui/%s differs from swagger-ui-dist %s's: run npm run vendor", name, pinned)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("swagger-ui/%s is not from swagger-ui-dist: run npm run vendor", name)
		}
	}

	// npm run vendor installs the same tree here, where go ./... patterns
	// walk it (they skip only ., _ and testdata): a .go file in it would
	// break go vet ./... and go test ./...
	err := filepath.WalkDir(filepath.Join(tmp, "node_modules"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			t.Errorf("%s: a .go file in node_modules breaks go ./... patterns", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// tree reads the files of a flat directory.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte)
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("%s/%s: a directory; the page's files are flat", dir, e.Name())
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	if len(files) == 0 {
		t.Fatalf("%s is empty", dir)
	}
	return files
}
