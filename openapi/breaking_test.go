package openapi_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pace/userphone/internal/testenv"
)

// The breaking-change gate (breaking.sh, run by .ci/run) on the committed
// files, and on edited copies of the released spec: what breaks clients
// fails with the lines that acknowledge it, and passes once CHANGELOG.md's
// Unreleased section has them.

const released = "released/userphone.yaml"

// gate runs breaking.sh and returns its output and exit status. No
// arguments: the committed baseline, spec and CHANGELOG.md.
func gate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		testenv.Missing(t, "bash", err)
	}
	goCmd := testenv.GoCommand(t)
	cmd := exec.Command(bash, append([]string{"breaking.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "GO="+goCmd)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("breaking.sh: %v\n%s", err, out)
		return "", -1
	}
}

func TestBreakingGatePassesOnTheCommittedSpec(t *testing.T) {
	out, code := gate(t)
	if code != 0 {
		t.Fatalf("the spec breaks the released one without a CHANGELOG.md entry (exit %d):\n%s", code, out)
	}
}

// edit returns the released spec with each old string replaced by its new
// one, written to a file in dir.
func edit(t *testing.T, dir, name string, oldNew ...string) string {
	t.Helper()
	b, err := os.ReadFile(released)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(oldNew); i += 2 {
		if strings.Count(s, oldNew[i]) != 1 {
			t.Fatalf("the released spec does not hold this text exactly once; pick another edit for this test:\n%s", oldNew[i])
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func changelog(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "CHANGELOG.md")
	if err := os.WriteFile(path, []byte("# Changelog\n\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const noUnreleasedEntries = "## [Unreleased]\n\n## [1.0.0] - 2026-11-27\n\nThe first release.\n"

func TestBreakingGateFailsOnABreakingChangeUntilTheChangelogAcknowledgesIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		oldNew []string
		want   string // in the failure's text and in the line to paste
	}{{
		name: "an operation removed",
		oldNew: []string{
			"    post:\n      operationId: ConfirmPhoneChange\n", "    x-removed-post:\n      operationId: ConfirmPhoneChange\n",
		},
		want: "POST /user/phone/confirm — API removed without deprecation",
	}, {
		// Deprecated by PACE, but still served: the gate raises oasdiff's
		// INFO for this to an error.
		name: "a deprecated operation removed",
		oldNew: []string{
			"  /user/phone/verify:\n    put:\n", "  /user/phone/verify:\n    x-removed-put:\n",
		},
		want: "PUT /user/phone/verify — API removed with deprecation",
	}, {
		name: "an optional request property made required",
		oldNew: []string{
			"required: [type, attributes]", "required: [type, id, attributes]",
		},
		want: "PUT /user/phone — the request property `data/id` became required",
	}, {
		name: "a required response property removed",
		oldNew: []string{
			"required: [phoneNumber, verified]", "required: [phoneNumber]",
			"        verified:\n          type: boolean\n          description: Whether `phoneNumber` is verified.\n", "",
		},
		want: "GET /user/phone — removed the required property `data/attributes/verified` from the response with the `200` status",
	}, {
		// oasdiff's WARN level: the gate fails on it too.
		name: "a request property removed",
		oldNew: []string{
			"            id:\n              type: string\n              maxLength: 128\n              description: Accepted for compatibility with PACE's clients and ignored.\n", "",
		},
		want: "PUT /user/phone — removed the request property `data/id`",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			spec := edit(t, dir, "userphone.yaml", tc.oldNew...)

			out, code := gate(t, released, spec, changelog(t, dir, noUnreleasedEntries))
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			for _, want := range []string{"breaking-change gate: FAILED", "can break clients", "revert", `under "## [Unreleased]"`, tc.want} {
				if !strings.Contains(out, want) {
					t.Errorf("the failure does not say %q:\n%s", want, out)
				}
			}
			lines := regexp.MustCompile(`(?m)^- [A-Z]+ /.*$`).FindAllString(out, -1)
			if len(lines) == 0 {
				t.Fatalf("no line to paste into CHANGELOG.md:\n%s", out)
			}
			var ack strings.Builder
			for _, l := range lines {
				ack.WriteString(l + ", on purpose: clients must adapt.\n")
			}

			// The printed lines, with words added, under Unreleased: passes.
			out, code = gate(t, released, spec, changelog(t, dir,
				"## [Unreleased]\n\n### Changed\n\n"+ack.String()+"\n## [1.0.0] - 2026-11-27\n"))
			if code != 0 {
				t.Fatalf("acknowledged under Unreleased, exit %d, want 0:\n%s\nCHANGELOG lines:\n%s", code, out, ack.String())
			}

			// The same lines under a released version acknowledge nothing.
			out, code = gate(t, released, spec, changelog(t, dir,
				"## [Unreleased]\n\n## [1.0.0] - 2026-11-27\n\n"+ack.String()))
			if code != 1 {
				t.Fatalf("acknowledged only under a released version, exit %d, want 1:\n%s", code, out)
			}

			// Half of a change's entry (the path without the text) is not enough.
			out, code = gate(t, released, spec, changelog(t, dir,
				"## [Unreleased]\n\n- "+strings.SplitN(tc.want, " — ", 2)[0]+" changed.\n"))
			if code != 1 {
				t.Fatalf("a vague entry, exit %d, want 1:\n%s", code, out)
			}
		})
	}
}

func TestBreakingGatePassesANonBreakingChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		oldNew []string
	}{{
		name: "an optional response property added",
		oldNew: []string{
			"        pendingChange:\n          $ref: \"#/components/schemas/PendingChange\"\n",
			"        pendingChange:\n          $ref: \"#/components/schemas/PendingChange\"\n" +
				"        verifiedAt:\n          type: string\n          format: date-time\n          description: When the number was verified.\n",
		},
	}, {
		name: "an operation added",
		oldNew: []string{
			"  /user/phone/verify:\n",
			"  /user/phone/history:\n    get:\n      operationId: ListUserPhoneChanges\n      responses:\n" +
				"        \"200\":\n          description: The user's phone changes.\n" +
				"  /user/phone/verify:\n",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			spec := edit(t, dir, "userphone.yaml", tc.oldNew...)
			out, code := gate(t, released, spec, changelog(t, dir, noUnreleasedEntries))
			if code != 0 {
				t.Fatalf("exit %d, want 0:\n%s", code, out)
			}
		})
	}
}

func TestBreakingGateNeedsAnUnreleasedSection(t *testing.T) {
	dir := t.TempDir()
	out, code := gate(t, released, "userphone.yaml", changelog(t, dir, "## [1.0.0] - 2026-11-27\n"))
	if code != 2 || !strings.Contains(out, `no "## [Unreleased]" section`) {
		t.Fatalf("exit %d, want 2 and a word about the missing section:\n%s", code, out)
	}
}
