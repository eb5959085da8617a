package check

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/pace/userphone/openapi"
)

// served is the spec as an instance at base serves it, parsed as the
// contract test parses what it fetched.
func served(t *testing.T, spec []byte, base string) *Spec {
	t.Helper()
	s, err := Parse(spec, base)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func embedded(t *testing.T) *Spec {
	t.Helper()
	s, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An instance lists itself first among the servers; that is no
// difference in the contract.
func TestDiffIgnoresTheServedServersList(t *testing.T) {
	s := served(t, openapi.ServedBy("https://staging.example.com/user/2021-2"), openapi.BasePath)
	if d := Diff(s.Doc(), embedded(t).Doc()); d != "" {
		t.Fatalf("the served spec of an unchanged instance differs: %s", d)
	}
}

// Diff names the first difference anywhere in the document, the
// components included, as a JSON pointer with both sides' values.
func TestDiffNamesTheFirstDifference(t *testing.T) {
	dropped409 := `        "409":
          $ref: "#/components/responses/Conflict"
        "413":
          $ref: "#/components/responses/RequestTooLarge"
        "415":
          $ref: "#/components/responses/UnsupportedMediaType"
        "422":
          $ref: "#/components/responses/UnprocessableEntity"
        "429":
          $ref: "#/components/responses/TooManyRequests"
        "501":
          $ref: "#/components/responses/InternalError"
        "503":
          $ref: "#/components/responses/ServiceUnavailable"
    get:`
	cases := []struct {
		name     string
		old, new string
		want     string // how Diff's answer starts
	}{
		{"a dropped status", dropped409, dropped409[strings.Index(dropped409, `        "413"`):],
			`at /paths/~1user~1phone/put/responses/409: served (none), embedded {"$ref":"#/components/responses/Conflict"}`},
		{"a required field made optional", "      required: [phoneNumber, verified]\n", "      required: [phoneNumber]\n",
			`at /components/schemas/PhoneAttributes/required: served ["phoneNumber"], embedded ["phoneNumber","verified"]`},
		{"a renamed path", "  /user/phone/verify:\n", "  /user/phone/verification:\n",
			`at /paths/~1user~1phone~1verification: served {"put":{"deprecated":true,"operationId":"VerifyUserPhone",`},
		// The parts that operations share by $ref: a change there changes
		// every operation that refers to it.
		{"the confirmation token's maxLength", "        minLength: 1\n        maxLength: 256\n      example: 3q2",
			"        minLength: 1\n        maxLength: 128\n      example: 3q2",
			"at /components/parameters/ConfirmationToken/schema/maxLength: served 128, embedded 256"},
		{"the confirmation token made optional", "      name: token\n      in: query\n      required: true\n",
			"      name: token\n      in: query\n      required: false\n",
			"at /components/parameters/ConfirmationToken/required: served (none), embedded true"},
		{"the Deprecation header's pattern", `        pattern: "^@-?[0-9]{1,15}$"`, `        pattern: "^@[0-9]+$"`,
			`at /components/headers/Deprecation/schema/pattern: served "^@[0-9]+$", embedded "^@-?[0-9]{1,15}$"`},
		{"a scope renamed in the security scheme", `            "user:users.phone:check": Check`, `            "user:users.phone:read": Check`,
			`at /components/securitySchemes/OAuth2/flows/authorizationCode/scopes/user:users.phone:check: served (none), embedded ""`},
		{"a scope the whole document asks for", "security:\n  - OAuth2: []\n", "security:\n  - OAuth2: [\"user:users.phone:check\"]\n",
			`at /security/0/OAuth2: served ["user:users.phone:check"], embedded []`},
		{"info.version", `  version: "2021-2"`, `  version: "2021-3"`, `at /info/version: served "2021-3", embedded "2021-2"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := string(openapi.Spec)
			if strings.Count(text, c.old) != 1 {
				t.Fatalf("the spec does not hold the text to change exactly once:\n%s", c.old)
			}
			s := served(t, []byte(strings.Replace(text, c.old, c.new, 1)), openapi.BasePath)
			if d := Diff(s.Doc(), embedded(t).Doc()); !strings.HasPrefix(d, c.want) {
				t.Fatalf("Diff = %q,\nwant it to start %q", d, c.want)
			}
		})
	}
}

// Prose may change without changing the contract: descriptions,
// summaries, examples, external docs, what a scope is for.
func TestDiffIgnoresProse(t *testing.T) {
	text := string(openapi.Spec)
	for _, edit := range [][2]string{
		{"description: Whether `phoneNumber` is verified.", "description: Changed words."},
		{"      summary: Extension. The page behind the e-mail link\n", "      summary: Other words\n"},
		{`            "user:users.phone:check": Check the user's phone number`, `            "user:users.phone:check": Other words`},
		{"      example: 3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n    AcceptLanguage:", "      example: other\n    AcceptLanguage:"},
		{"components:\n  securitySchemes:\n", "externalDocs:\n  url: https://example.com/docs\ncomponents:\n  securitySchemes:\n"},
	} {
		if strings.Count(text, edit[0]) != 1 {
			t.Fatalf("the spec does not hold the text to change exactly once:\n%s", edit[0])
		}
		text = strings.Replace(text, edit[0], edit[1], 1)
	}
	if d := Diff(served(t, []byte(text), openapi.BasePath).Doc(), embedded(t).Doc()); d != "" {
		t.Fatalf("changed prose is a difference: %s", d)
	}
}

// A name is no prose: a schema's property called "description" is part
// of the contract, and so are an enum's values.
func TestPropertiesNamedLikeProseStayInTheContract(t *testing.T) {
	schema := func(props map[string]any) map[string]any {
		return map[string]any{"components": map[string]any{"schemas": map[string]any{"Note": props}}}
	}
	got := withoutProse(schema(map[string]any{
		"description": "prose",
		"properties":  map[string]any{"description": map[string]any{"type": "string", "example": "x"}},
		"enum":        []any{map[string]any{"description": "a value"}},
	}), anObject)
	want := schema(map[string]any{
		"properties": map[string]any{"description": map[string]any{"type": "string"}},
		"enum":       []any{map[string]any{"description": "a value"}},
	})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("withoutProse = %v,\nwant %v", got, want)
	}
}

// An undocumented status fails, redirects too, which kin-openapi passes
// without looking.
func TestCheckFailsAnUndocumentedRedirect(t *testing.T) {
	s := embedded(t)
	req := httptest.NewRequest("GET", openapi.BasePath+"/user/phone", nil)
	for _, status := range []int{301, 304, 307, 308} {
		op, err := s.Check(Exchange{Request: req, Status: status, Header: http.Header{"Location": {"https://elsewhere.example/"}}})
		if op != "CheckUserPhone" || err == nil || !strings.Contains(err.Error(), "status is not supported") {
			t.Errorf("an undocumented %d: %q, %v; want a violation", status, op, err)
		}
	}
}

// An instance behind a path prefix is checked under its own base.
func TestCheckRoutesUnderTheGivenBase(t *testing.T) {
	s := served(t, openapi.Spec, "/api"+openapi.BasePath)
	req := httptest.NewRequest("GET", "/api"+openapi.BasePath+"/user/phone", nil)
	jsonAPI := http.Header{"Content-Type": {ErrorMediaType}}
	notFound := `{"errors":[{"id":"r1","status":"404","code":"not-found","title":"Not found"}]}`
	op, err := s.Check(Exchange{Request: req, Status: 404, Header: jsonAPI, Body: []byte(notFound)})
	if op != "CheckUserPhone" || err != nil {
		t.Fatalf("Check = %q, %v; want CheckUserPhone and no error", op, err)
	}
	op, err = s.Check(Exchange{Request: req, Status: 418, Header: jsonAPI, Body: []byte(notFound)})
	if op != "CheckUserPhone" || err == nil || !strings.Contains(err.Error(), "status is not supported") {
		t.Fatalf("an undocumented status: %q, %v", op, err)
	}
}

func TestPairsMarkWhatIsNeverAnswered(t *testing.T) {
	found := false
	for _, p := range embedded(t).Pairs() {
		if p.Key() == "UpdateUserPhone 404" {
			found = p.NotAnswered
		}
		if p.Key() == "UpdateUserPhone 201" && p.NotAnswered {
			t.Error("UpdateUserPhone 201 is marked as never answered")
		}
	}
	if !found {
		t.Fatal("UpdateUserPhone 404 is not listed as never answered")
	}
}

// What an instance answered is printed as one line that cannot rewrite
// the terminal or reorder the text around it.
func TestShortenPrintsOneSafeLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"a\n  b\tc", 100, "a b c"},
		{"\x1b[2J\x1b]0;title\x07ok", 100, `\u001b[2J\u001b]0;title\u0007ok`},
		{"abc\u202edef", 100, `abc\u202edef`},
		{"\xff", 100, "\uFFFD"},
		{"xäy", 2, "x…"}, // cut at a character's boundary
	} {
		if got := Shorten(c.in, c.max); got != c.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
