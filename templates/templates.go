// Package templates owns the words users read: the e-mails (plain text with
// an HTML alternative), the SMS and the pages behind the e-mail link, in
// German (informal "du") and English. Texts live in embedded files so they
// can be reviewed and translated without reading Go.
package templates

import (
	_ "time/tzdata"

	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed pages messages
var files embed.FS

// PageKind selects what a page behind the e-mail link says.
type PageKind int

const (
	PageConfirm     PageKind = iota // shows the masked pending number and a form with a Confirm button that POSTs the token
	PageConfirmed                   // the change is confirmed, an SMS with a code is on its way: enter it in the app
	PageUnknownLink                 // the link is unknown or malformed, or a newer e-mail replaced it
	PageUsedLink                    // the change was verified or cancelled
	PageExpiredLink                 // the change has expired; start again in the app
)

var pageFiles = map[PageKind]string{
	PageConfirm:     "confirm.html",
	PageConfirmed:   "confirmed.html",
	PageUnknownLink: "unknown-link.html",
	PageUsedLink:    "used-link.html",
	PageExpiredLink: "expired-link.html",
}

// Page is one page behind the e-mail link.
type Page struct {
	Kind         PageKind
	Lang         string
	MaskedNumber string    // PageConfirm, PageConfirmed
	Token        string    // PageConfirm: goes into a hidden input named "token"
	ActionURL    string    // PageConfirm: the form's action (method POST)
	ExpiresAt    time.Time // PageConfirm: shown in its own location, with the zone's name
}

// pages holds one template per language and kind; each is the shared
// layout plus the file that fills in its words.
var pages = map[string]map[PageKind]*htmltemplate.Template{}

// messages holds the e-mail and SMS templates, one set per language.
var messages = map[string]*texttemplate.Template{}

// Names of the e-mails, which have a text and an HTML version each.
const (
	emailConfirmChange   = "confirm-change"
	emailNumberRemoved   = "number-removed"
	emailNumberRequested = "number-requested"
)

// htmlEmails holds the HTML versions of the e-mails, one per language and
// e-mail; each is the shared e-mail layout plus the file with its words.
var htmlEmails = map[string]map[string]*htmltemplate.Template{}

func init() {
	// Parsing at start-up turns a broken template into a crash on deploy
	// instead of an error on the first user's request.
	for _, lang := range supported {
		pages[lang] = map[PageKind]*htmltemplate.Template{}
		for kind, file := range pageFiles {
			pages[lang][kind] = htmltemplate.Must(htmltemplate.ParseFS(files, "pages/layout.html", "pages/"+lang+"/"+file))
		}
		messages[lang] = texttemplate.Must(texttemplate.ParseFS(files, "messages/"+lang+"/*.txt"))
		htmlEmails[lang] = map[string]*htmltemplate.Template{}
		for _, name := range []string{emailConfirmChange, emailNumberRemoved, emailNumberRequested} {
			htmlEmails[lang][name] = htmltemplate.Must(htmltemplate.ParseFS(files, "messages/layout.html", "messages/"+lang+"/"+name+".html"))
		}
	}
}

type pageData struct {
	Lang, MaskedNumber, Token, ActionURL, Expires string
}

// RenderPage writes p as a complete HTML document. An unsupported Lang
// renders in English.
func RenderPage(w io.Writer, p Page) error {
	lang := supportedLang(p.Lang)
	t, ok := pages[lang][p.Kind]
	if !ok {
		return fmt.Errorf("templates: unknown page kind %d", p.Kind)
	}
	return t.ExecuteTemplate(w, "layout.html", pageData{
		Lang:         lang,
		MaskedNumber: p.MaskedNumber,
		Token:        p.Token,
		ActionURL:    p.ActionURL,
		Expires:      formatTime(lang, p.ExpiresAt),
	})
}

type messageData struct {
	Lang, Subject, MaskedNumber, Link, Expires, Code string
}

// ConfirmChangeEmail returns the e-mail that asks a user with a verified
// number to confirm changing it to maskedNumber by opening link: its
// subject, its plain text and its HTML alternative. Both bodies carry the
// link as a plain URL, and the HTML one also as a button.
func ConfirmChangeEmail(lang, maskedNumber, link string, expiresAt time.Time) (subject, text, html string) {
	lang = supportedLang(lang)
	d := messageData{Lang: lang, MaskedNumber: maskedNumber, Link: link, Expires: formatTime(lang, expiresAt)}
	return email(lang, emailConfirmChange, d)
}

// CodeSMS returns the SMS that carries a verification code and says what
// it is for. The code comes first so phones can offer to autofill it.
// With an originHost, the text ends with the origin-bound code line
// ("@host #code", WebOTP), with which browsers and the iOS and Android
// keyboards fill the code in on that site only. The text stays within one
// GSM-7 SMS (160 characters, no characters outside the GSM basic set).
func CodeSMS(lang, code, originHost string) string {
	text := execText(messages[supportedLang(lang)], "code-sms", messageData{Code: code})
	if originHost != "" {
		text += "\n\n@" + originHost + " #" + code
	}
	return text
}

// NumberRemovedEmail returns the e-mail to a user whose verified number
// another account has now verified: carriers give numbers to new
// customers, and the number belongs to whoever can receive its SMS. It
// returns the subject, the plain text and the HTML alternative.
func NumberRemovedEmail(lang, maskedNumber string) (subject, text, html string) {
	lang = supportedLang(lang)
	return email(lang, emailNumberRemoved, messageData{Lang: lang, MaskedNumber: maskedNumber})
}

// NumberRequestedEmail returns the e-mail to a user whose verified number
// another account has just asked for: before anyone proves possession,
// so that the owner hears of it at once. It returns the subject, the
// plain text and the HTML alternative.
func NumberRequestedEmail(lang, maskedNumber string) (subject, text, html string) {
	lang = supportedLang(lang)
	return email(lang, emailNumberRequested, messageData{Lang: lang, MaskedNumber: maskedNumber})
}

// email renders the three parts of the e-mail name in lang, which must be
// supported. The HTML goes through html/template, so the number and the
// link are escaped, and a link with a scheme other than http(s) or mailto
// is replaced rather than made clickable.
func email(lang, name string, d messageData) (subject, text, html string) {
	subject = execText(messages[lang], name+".subject", d)
	text = execText(messages[lang], name+".text", d)
	d.Subject = subject
	var b strings.Builder
	if err := htmlEmails[lang][name].ExecuteTemplate(&b, "layout.html", d); err != nil {
		panic(fmt.Sprintf("templates: %s.html: %v", name, err))
	}
	return subject, text, strings.TrimSpace(b.String())
}

// execText panics on error: the templates are embedded and the data holds
// only strings, so an error is a bug that the tests catch.
func execText(t *texttemplate.Template, name string, data messageData) string {
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		panic(fmt.Sprintf("templates: %s: %v", name, err))
	}
	return strings.TrimSpace(b.String())
}

var germanMonths = [...]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}

// germanTime is where German readers most likely are. The service does not
// know the reader's zone, so it names the zone it shows: Berlin time for
// German, UTC for English.
var germanTime = mustLoadLocation("Europe/Berlin")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name) // time/tzdata makes this machine-independent
	if err != nil {
		panic(err)
	}
	return loc
}

// formatTime shows t in the language's zone, with the zone's name.
func formatTime(lang string, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	if lang == "de" {
		t = t.In(germanTime)
		return fmt.Sprintf("%d. %s %d, %s Uhr (%s)", t.Day(), germanMonths[t.Month()-1], t.Year(), t.Format("15:04"), t.Format("MST"))
	}
	return t.UTC().Format("2 January 2006, 15:04 (MST)")
}
