package templates

import (
	"bytes"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLang(t *testing.T) {
	tests := []struct {
		locale, accept, want string
	}{
		{"de", "", "de"},
		{"de-DE", "en", "de"},
		{"de_AT", "en-US,en;q=0.9", "de"},
		{"en-GB", "de", "en"},
		{"EN_us", "de", "en"},
		{"fr-FR", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"", "en-US,en;q=0.9,de;q=0.8", "en"},
		{"", "de;q=0.5, en;q=0.7", "en"},
		{"", "fr, de;q=0.3, en;q=0.2", "de"},
		{"", "de;q=0, en;q=0.1", "en"},
		{"", "de-CH;q=0.9, de;q=0", "de"},
		{"", "de;q=0", "en"},
		{"", "de, en", "de"},
		{"", "en, de", "en"},
		{"", "fr, *;q=0.5", "en"},
		{"", "en;q=0, *", "de"},
		{"", "de;q=nonsense, en;q=0.1", "en"},
		{"", "de;q=2", "en"},
		{"", "fr-FR, it", "en"},
		{"", "", "en"},
		{"", ",,;;==", "en"},
	}
	for _, tt := range tests {
		if got := Lang(tt.locale, tt.accept); got != tt.want {
			t.Errorf("Lang(%q, %q) = %q; want %q", tt.locale, tt.accept, got, tt.want)
		}
	}
}

// expires is given in CET; German texts show Berlin time, English ones UTC.
var expires = time.Date(2025, 3, 7, 14, 5, 0, 0, time.FixedZone("CET", 3600))

func render(t *testing.T, p Page) string {
	t.Helper()
	var b bytes.Buffer
	if err := RenderPage(&b, p); err != nil {
		t.Fatalf("RenderPage(%+v): %v", p, err)
	}
	return b.String()
}

// inner returns the unescaped text of the first element matching re.
func inner(t *testing.T, doc, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no match for %s in:\n%s", re, doc)
	}
	return html.UnescapeString(m[1])
}

func TestRenderPageEveryKind(t *testing.T) {
	titles := map[string]map[PageKind]string{
		"de": {
			PageConfirm:     "Neue Telefonnummer bestätigen",
			PageConfirmed:   "Änderung bestätigt",
			PageUnknownLink: "Link ungültig",
			PageUsedLink:    "Link nicht mehr gültig",
			PageExpiredLink: "Link abgelaufen",
		},
		"en": {
			PageConfirm:     "Confirm your new phone number",
			PageConfirmed:   "Change confirmed",
			PageUnknownLink: "Invalid link",
			PageUsedLink:    "Link no longer valid",
			PageExpiredLink: "Link expired",
		},
	}
	for lang, kinds := range titles {
		for kind, title := range kinds {
			doc := render(t, Page{Kind: kind, Lang: lang, MaskedNumber: "+49 •••• 678", Token: "tok", ActionURL: "/confirm", ExpiresAt: expires})
			for _, want := range []string{
				"<!DOCTYPE html>",
				`<html lang="` + lang + `">`,
				`<meta name="viewport"`,
				`<meta name="robots" content="noindex">`,
				`<meta name="referrer" content="no-referrer">`,
			} {
				if !strings.Contains(doc, want) {
					t.Errorf("%s page %d lacks %s", lang, kind, want)
				}
			}
			if got := inner(t, doc, `<title>(.*?)</title>`); got != title {
				t.Errorf("%s page %d: title %q; want %q", lang, kind, got, title)
			}
			if got := inner(t, doc, `<h1 id="title">(.*?)</h1>`); got != title {
				t.Errorf("%s page %d: h1 %q; want %q", lang, kind, got, title)
			}
			if kind == PageConfirm || kind == PageConfirmed {
				if got := inner(t, doc, `id="number">(.*?)<`); got != "+49 •••• 678" {
					t.Errorf("%s page %d: number %q", lang, kind, got)
				}
			}
			// No fonts, scripts, images or stylesheets from elsewhere.
			for _, bad := range []string{"<script", "<img", "<link", "src=", "url(", "@import", "http"} {
				if strings.Contains(doc, bad) {
					t.Errorf("%s page %d contains %q", lang, kind, bad)
				}
			}
		}
	}
}

func TestRenderPageConfirmForm(t *testing.T) {
	for _, lang := range []string{"de", "en"} {
		doc := render(t, Page{Kind: PageConfirm, Lang: lang, MaskedNumber: "+49 •••• 678", Token: "abc-123_XYZ", ActionURL: "/v1/phone/confirm?x=1&y=2", ExpiresAt: expires})
		form := inner(t, doc, `(?s)(<form .*?</form>)`)
		for _, want := range []string{
			`method="post"`,
			`action="/v1/phone/confirm?x=1&y=2"`,
			`enctype="application/x-www-form-urlencoded"`,
			`<input type="hidden" name="token" value="abc-123_XYZ">`,
			`<button type="submit" id="confirm">`,
		} {
			if !strings.Contains(form, want) {
				t.Errorf("%s form lacks %s:\n%s", lang, want, form)
			}
		}
		wantTime := map[string]string{"de": "7. März 2025, 14:05 Uhr (CET)", "en": "7 March 2025, 13:05 (UTC)"}[lang]
		if !strings.Contains(html.UnescapeString(doc), wantTime) {
			t.Errorf("%s page lacks the expiry %q", lang, wantTime)
		}
	}
}

func TestRenderPageEscapes(t *testing.T) {
	evil := `"><script>alert(1)</script>`
	doc := render(t, Page{Kind: PageConfirm, Lang: "en", MaskedNumber: evil, Token: evil, ActionURL: "javascript:alert(1)", ExpiresAt: expires})
	if strings.Contains(doc, "<script") || strings.Contains(doc, "javascript:") {
		t.Fatalf("page is not escaped:\n%s", doc)
	}
	if got := inner(t, doc, `name="token" value="(.*?)"`); got != evil {
		t.Errorf("token = %q; want it escaped, not altered", got)
	}
	if got := inner(t, doc, `id="number">(.*?)</strong>`); got != evil {
		t.Errorf("number = %q; want it escaped, not altered", got)
	}
}

func TestRenderPageFallbacks(t *testing.T) {
	doc := render(t, Page{Kind: PageUnknownLink, Lang: "fr"})
	if !strings.Contains(doc, `<html lang="en">`) {
		t.Error("unsupported language does not fall back to English")
	}
	if err := RenderPage(&bytes.Buffer{}, Page{Kind: PageKind(99), Lang: "de"}); err == nil {
		t.Error("unknown page kind renders")
	}
}

func TestConfirmChangeEmail(t *testing.T) {
	const link = "https://example.test/confirm?token=abc&x=1"
	deSubject, deText, deHTML := ConfirmChangeEmail("de", "+49 •••• 678", link, expires)
	enSubject, enText, enHTML := ConfirmChangeEmail("en", "+49 •••• 678", link, expires)
	for _, text := range []string{deText, enText} {
		if !strings.Contains(text, "\n"+link+"\n") {
			t.Errorf("link missing or not on its own line:\n%s", text)
		}
		if !strings.Contains(text, "+49 •••• 678") {
			t.Errorf("number missing:\n%s", text)
		}
	}
	if !strings.Contains(deText, "14:05 Uhr (CET)") || !strings.Contains(enText, "13:05 (UTC)") {
		t.Errorf("expiry missing:\n%s\n%s", deText, enText)
	}
	if deSubject == enSubject || deText == enText || deHTML == enHTML || deSubject == "" || enSubject == "" {
		t.Error("texts do not differ by language")
	}
	if !strings.Contains(deText, " du ") {
		t.Error("German text does not use du")
	}

	for lang, doc := range map[string]string{"de": deHTML, "en": enHTML} {
		checkEmailHTML(t, lang, doc, map[string]string{"de": deSubject, "en": enSubject}[lang])
		if got := inner(t, doc, `<a id="link" href="(.*?)"`); got != link {
			t.Errorf("%s: button links to %q; want %q", lang, got, link)
		}
		if got := inner(t, doc, `<span id="url"[^>]*>(.*?)</span>`); got != link {
			t.Errorf("%s: plain URL is %q; want %q", lang, got, link)
		}
		if !strings.Contains(doc, "token=abc&amp;x=1") {
			t.Errorf("%s: & in the link is not escaped:\n%s", lang, doc)
		}
		if got := inner(t, doc, `id="number"[^>]*>(.*?)<`); got != "+49 •••• 678" {
			t.Errorf("%s: number %q", lang, got)
		}
		wantTime := map[string]string{"de": "7. März 2025, 14:05 Uhr (CET)", "en": "7 March 2025, 13:05 (UTC)"}[lang]
		if !strings.Contains(html.UnescapeString(doc), wantTime) {
			t.Errorf("%s: HTML lacks the expiry %q", lang, wantTime)
		}
	}
	if !strings.Contains(html.UnescapeString(deHTML), " du ") {
		t.Error("German HTML does not use du")
	}
}

// checkEmailHTML checks what every HTML e-mail must be: a whole document in
// its language, titled with its subject, that loads nothing from elsewhere.
func checkEmailHTML(t *testing.T, lang, doc, subject string) {
	t.Helper()
	for _, want := range []string{"<!DOCTYPE html>", `<html lang="` + lang + `">`, `<meta charset="utf-8">`, "</html>"} {
		if !strings.Contains(doc, want) {
			t.Errorf("%s e-mail lacks %s", lang, want)
		}
	}
	if got := inner(t, doc, `<title>(.*?)</title>`); got != subject {
		t.Errorf("%s e-mail: title %q; want the subject %q", lang, got, subject)
	}
	for _, bad := range []string{"<script", "<img", "<link", "<style", "src=", "url(", "@import", "{{", "ZgotmplZ"} {
		if strings.Contains(doc, bad) {
			t.Errorf("%s e-mail contains %q", lang, bad)
		}
	}
	// The only address in the e-mail is the link itself.
	rest := regexp.MustCompile(`https://example\.test/confirm\?token=abc&amp;x=1`).ReplaceAllString(doc, "")
	if strings.Contains(rest, "http") {
		t.Errorf("%s e-mail refers to another address:\n%s", lang, doc)
	}
}

func TestConfirmChangeEmailEscapes(t *testing.T) {
	evil := `"><script>alert(1)</script>`
	_, text, doc := ConfirmChangeEmail("en", evil, "javascript:alert(1)", expires)
	if strings.Contains(doc, "<script") || strings.Contains(doc, `href="javascript:`) {
		t.Fatalf("HTML is not escaped:\n%s", doc)
	}
	if got := inner(t, doc, `<a id="link" href="(.*?)"`); got != "#ZgotmplZ" {
		t.Errorf("a javascript: link became href %q; want html/template's placeholder", got)
	}
	if got := inner(t, doc, `id="number"[^>]*>(.*?)</strong>`); got != evil {
		t.Errorf("number = %q; want it escaped, not altered", got)
	}
	// The text version is plain text: nothing to escape there.
	if !strings.Contains(text, evil) {
		t.Errorf("text version altered the number:\n%s", text)
	}
}

func TestNumberRemovedEmail(t *testing.T) {
	deSubject, deText, deHTML := NumberRemovedEmail("de", "+49 •••• 678")
	enSubject, enText, enHTML := NumberRemovedEmail("en", "+49 •••• 678")
	for _, text := range []string{deText, enText} {
		if !strings.Contains(text, "+49 •••• 678") {
			t.Errorf("number missing:\n%s", text)
		}
	}
	if deSubject == enSubject || deText == enText || deHTML == enHTML {
		t.Error("texts do not differ by language")
	}
	for lang, doc := range map[string]string{"de": deHTML, "en": enHTML} {
		checkEmailHTML(t, lang, doc, map[string]string{"de": deSubject, "en": enSubject}[lang])
		if got := inner(t, doc, `id="number"[^>]*>(.*?)<`); got != "+49 •••• 678" {
			t.Errorf("%s: number %q", lang, got)
		}
		if strings.Contains(doc, "<a ") {
			t.Errorf("%s: the notice has a link:\n%s", lang, doc)
		}
	}
	if _, _, doc := NumberRemovedEmail("fr", "x"); !strings.Contains(doc, `<html lang="en">`) {
		t.Error("unsupported language does not fall back to English")
	}
}

// TestHTMLMatchesText keeps the two versions of an e-mail saying the same:
// every paragraph of the text version appears in the HTML one, once tags
// are removed.
func TestHTMLMatchesText(t *testing.T) {
	const link = "https://example.test/confirm?token=abc&x=1"
	blocks := regexp.MustCompile(`</?(p|br|h1|div)\b[^>]*>`)
	tags := regexp.MustCompile(`<[^>]*>`)
	space := regexp.MustCompile(`\s+`)
	flat := func(s string) string { return strings.TrimSpace(space.ReplaceAllString(s, " ")) }
	for _, lang := range []string{"de", "en"} {
		_, cText, cHTML := ConfirmChangeEmail(lang, "+49 •••• 678", link, expires)
		_, rText, rHTML := NumberRemovedEmail(lang, "+49 •••• 678")
		for _, pair := range [][2]string{{cText, cHTML}, {rText, rHTML}} {
			plain := flat(html.UnescapeString(tags.ReplaceAllString(blocks.ReplaceAllString(pair[1], " "), "")))
			for _, para := range strings.Split(pair[0], "\n\n") {
				if p := flat(para); !strings.Contains(plain, p) {
					t.Errorf("%s: HTML lacks the paragraph %q", lang, p)
				}
			}
		}
	}
}

// The origin-bound line is the SMS's last line, "@host #code", after a
// blank line, as WebOTP and the iOS and Android keyboards read it; without
// a host there is none.
func TestCodeSMSEndsWithTheOriginBoundLine(t *testing.T) {
	for _, lang := range []string{"de", "en"} {
		s := CodeSMS(lang, "123456", "api.example.com")
		lines := strings.Split(s, "\n")
		if len(lines) < 3 || lines[len(lines)-1] != "@api.example.com #123456" || lines[len(lines)-2] != "" {
			t.Errorf("%s: SMS %q does not end with a blank line and \"@api.example.com #123456\"", lang, s)
		}
		if plain := CodeSMS(lang, "123456", ""); strings.Contains(plain, "@") || strings.Contains(plain, "#") {
			t.Errorf("%s: SMS without a host has an origin line: %q", lang, plain)
		}
	}
}

// Both languages of the owner's notice name the masked number and say
// that it stays theirs.
func TestNumberRequestedEmail(t *testing.T) {
	for lang, stays := range map[string]string{"de": "bleibt deine", "en": "stays yours"} {
		subject, text, doc := NumberRequestedEmail(lang, "+49 •••• 678")
		if subject == "" || !strings.Contains(text, "+49 •••• 678") || !strings.Contains(text, stays) ||
			!strings.Contains(doc, "•••• 678") || !strings.Contains(doc, `<html lang="`+lang+`">`) {
			t.Errorf("%s: %q\n%s\n%s", lang, subject, text, doc)
		}
	}
}

// gsmBasic is the GSM 03.38 basic character set; text made only of it is
// sent as GSM-7, where one SMS holds 160 characters.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

func TestCodeSMS(t *testing.T) {
	de, en := CodeSMS("de", "123456", ""), CodeSMS("en", "123456", "")
	if de == en {
		t.Error("SMS does not differ by language")
	}
	// The SMS says what the code is for, so a user who did not ask for it
	// knows what someone is trying to do.
	if !strings.Contains(de, "Telefonnummer") || !strings.Contains(en, "phone number") {
		t.Errorf("SMS does not say what the code is for: %q, %q", de, en)
	}
	// The longest host a real deployment might have still fits.
	long := "phone-verification.api.example-company.com"
	for _, s := range []string{de, en, CodeSMS("xx", "12345678", ""), CodeSMS("de", "123456", long), CodeSMS("en", "123456", long)} {
		if !strings.HasPrefix(s, "123456") {
			t.Errorf("SMS %q does not start with the code", s)
		}
		if n := utf8.RuneCountInString(s); n >= 160 {
			t.Errorf("SMS %q has %d characters", s, n)
		}
		for _, r := range s {
			if !strings.ContainsRune(gsmBasic, r) {
				t.Errorf("SMS %q has %q outside the GSM basic set", s, r)
			}
		}
	}
}
