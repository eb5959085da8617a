package server_test

// The pages behind the e-mail link are the only part of the service that a
// person sees. These tests open them in a real, headless Chromium, so that
// the form, the button, the language and the masking are checked the way a
// user meets them, and not only as HTML text.

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/phone"
	"github.com/pace/userphone/store/storetest"
	"github.com/pace/userphone/templates"
)

// browserTimeout bounds the start of the browser and everything one tab
// does, so that a hung browser fails the test instead of hanging the run.
const browserTimeout = 60 * time.Second

// browserLanguages is what the browser asks for. The German test keeps it
// English on purpose: the user's own locale must win over it.
const browserLanguages = "en-US,en;q=0.9"

func TestConfirmationPageInABrowser(t *testing.T) {
	browser := startBrowser(t)
	forEachDialect(t, func(t *testing.T, h *harness) {
		tab := openTab(t, browser)
		tok, err := h.keys.Mint(userphone.Identity{Subject: "erika", Email: "erika@example.com", Locale: "de", Scopes: auth.AllScopes}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		h.verifyNumber(tok, numberA)
		if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("PUT new number: %d %s", r.StatusCode(), r.Body)
		}

		page := openPage(t, tab, confirmLink(h, h.linkToken("erika@example.com")))
		page.want(t, http.StatusOK, "de", templates.PageConfirm)
		if !page.HasConfirm || page.ConfirmButton == "" {
			t.Fatalf("no Confirm button with a label on the page:\n%s", page.HTML)
		}
		if page.Number != phone.Mask(numberB) {
			t.Fatalf("#number shows %q, want %q", page.Number, phone.Mask(numberB))
		}
		page.wantNoFullNumber(t, numberB)
		// Opening the page, as a mail scanner does, must change nothing.
		wantPendingStatus(t, h, tok, api.AwaitingEmailConfirmation)
		if m := h.messagesTo(numberB); len(m) != 0 {
			t.Fatalf("opening the page sent an SMS: %+v", m)
		}
		saveScreenshot(t, tab, "confirm")

		// The click is what a person does; it must POST the form and land
		// on the next page.
		resp, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.ID("confirm")))
		if err != nil {
			t.Fatalf("clicking Confirm: %v", err)
		}
		confirmed := readPage(t, tab, resp)
		if confirmed.Title == page.Title {
			t.Fatalf("the click left the title at %q", page.Title)
		}
		confirmed.want(t, http.StatusOK, "de", templates.PageConfirmed)
		if confirmed.HasConfirm {
			t.Fatal("the confirmed page still offers the Confirm button")
		}
		if confirmed.Number != phone.Mask(numberB) {
			t.Fatalf("#number on the confirmed page shows %q, want %q", confirmed.Number, phone.Mask(numberB))
		}
		confirmed.wantNoFullNumber(t, numberB)
		saveScreenshot(t, tab, "confirmed")

		if m := h.messagesTo(numberB); len(m) != 1 || m[0].Channel != "sms" {
			t.Fatalf("want one SMS to the new number after the click, got %+v", m)
		}
		wantPendingStatus(t, h, tok, api.AwaitingCode)
		if v := h.verify(tok, h.code(numberB)); v.StatusCode() != http.StatusOK ||
			v.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberB {
			t.Fatalf("verify the new number: %d %s", v.StatusCode(), v.Body)
		}
	})
}

func TestUsedLinkPageInABrowser(t *testing.T) {
	browser := startBrowser(t)
	forEachDialect(t, func(t *testing.T, h *harness) {
		tab := openTab(t, browser)
		// No locale in the token, so the browser's languages choose.
		tok := h.token("max", "max@example.com")
		h.verifyNumber(tok, numberA)
		if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("PUT new number: %d %s", r.StatusCode(), r.Body)
		}
		token := h.linkToken("max@example.com")
		if r := h.confirm(token); r.StatusCode() != http.StatusOK {
			t.Fatalf("confirm: %d %s", r.StatusCode(), r.Body)
		}
		// Verified: the link has done its work for good.
		if v := h.verify(tok, h.code(numberB)); v.StatusCode() != http.StatusOK {
			t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
		}

		used := openPage(t, tab, confirmLink(h, token))
		used.want(t, http.StatusGone, "en", templates.PageUsedLink)
		if used.HasConfirm {
			t.Fatalf("a used link still offers the Confirm button:\n%s", used.HTML)
		}
		used.wantNoFullNumber(t, numberB)

		unknown := openPage(t, tab, confirmLink(h, "no-such-token"))
		unknown.want(t, http.StatusNotFound, "en", templates.PageUnknownLink)
		if unknown.HasConfirm {
			t.Fatalf("an unknown link offers the Confirm button:\n%s", unknown.HTML)
		}
	})
}

// confirmLink is the e-mail's link on the test server: the e-mail names
// the configured public host, which the browser cannot reach.
func confirmLink(h *harness, token string) string {
	return h.srv.URL + openapi.BasePath + openapi.ConfirmPath + "?token=" + url.QueryEscape(token)
}

func wantPendingStatus(t *testing.T, h *harness, tok string, want api.PendingChangeStatus) {
	t.Helper()
	c := h.check(tok)
	if c.StatusCode() != http.StatusOK {
		t.Fatalf("check: %d %s", c.StatusCode(), c.Body)
	}
	a := c.ApplicationvndApiJSON200.Data.Attributes
	if a.PendingChange == nil || a.PendingChange.Status != want {
		t.Fatalf("pending change: %s, want status %s", c.Body, want)
	}
	// The verified number stays until the new one is verified.
	if a.PhoneNumber != numberA {
		t.Fatalf("phone number %s, want %s until the new one is verified", a.PhoneNumber, numberA)
	}
}

// The browser.

// chromiumPath finds the browser: USERPHONE_TEST_CHROMIUM, else Debian's
// package, else what PATH offers.
func chromiumPath() (string, error) {
	if p := os.Getenv("USERPHONE_TEST_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	var errs []error
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		p, err := exec.LookPath(name)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// startBrowser starts one Chromium for the test; its subtests each open a
// tab of it. The browser stops when the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	exe, err := chromiumPath()
	if err != nil {
		testenv.Missing(t, "Chromium", err)
	}
	var output testenv.SyncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.DisableGPU,
		// Chromium refuses its sandbox when it runs as root, as in CI
		// containers.
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		// Containers have a small /dev/shm, and the machine has no network:
		// nothing may call home, wait for updates or try QUIC.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 768),
		chromedp.CombinedOutput(&output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		if t.Failed() {
			t.Logf("Chromium's output:\n%s", output.String())
		}
	})
	// The browser lives as long as the context of its first Run, so a
	// context.WithTimeout here would stop it after the timeout; a timer
	// that cancels bounds only the start.
	timer := time.AfterFunc(browserTimeout, cancelBrowser)
	err = chromedp.Do(browser)
	timer.Stop()
	if err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return browser
}

// openTab opens a tab of the browser for one test. Everything the tab does
// shares one deadline.
func openTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	deadline, cancelDeadline := context.WithTimeout(browser, browserTimeout)
	tab, cancelTab := chromedp.NewContext(deadline)
	t.Cleanup(func() { cancelTab(); cancelDeadline() })
	// An explicit header, as the --lang flag and the machine's locale
	// differ between headless modes and machines.
	err := chromedp.Do(tab, chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Accept-Language": browserLanguages},
		})
		return err
	}))
	if err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return tab
}

// shownPage is what the browser shows of a confirmation page.
type shownPage struct {
	Status        int64  `json:"-"`
	Lang          string `json:"lang"`
	Title         string `json:"title"`
	Number        string `json:"number"`
	HasConfirm    bool   `json:"hasConfirm"`
	ConfirmButton string `json:"confirmButton"`
	HTML          string `json:"html"`
}

// pageScript reads the page at once: a query action would wait for an
// element that a page rightly lacks until the deadline.
const pageScript = `(() => {
	const text = id => document.getElementById(id)?.innerText.trim() ?? "";
	return {
		lang: document.documentElement.lang,
		title: text("title"),
		number: text("number"),
		hasConfirm: document.getElementById("confirm") !== null,
		confirmButton: text("confirm"),
		html: document.documentElement.outerHTML,
	};
})()`

func openPage(t *testing.T, tab context.Context, link string) shownPage {
	t.Helper()
	resp, err := chromedp.Run(tab, chromedp.NavigateResponse(link))
	if err != nil {
		t.Fatalf("opening %s: %v", link, err)
	}
	return readPage(t, tab, resp)
}

func readPage(t *testing.T, tab context.Context, resp *network.Response) shownPage {
	t.Helper()
	p, err := chromedp.Run(tab, chromedp.Evaluate[shownPage](pageScript))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	p.Status = resp.Status
	return p
}

// want checks the status, the language and that the page is the kind
// expected, by its title in that language.
func (p shownPage) want(t *testing.T, status int64, lang string, kind templates.PageKind) {
	t.Helper()
	if p.Status != status || p.Lang != lang {
		t.Fatalf("got %d with lang %q, want %d with lang %q:\n%s", p.Status, p.Lang, status, lang, p.HTML)
	}
	if want := pageTitle(t, kind, lang); p.Title == "" || p.Title != want {
		t.Fatalf("#title is %q, want %q:\n%s", p.Title, want, p.HTML)
	}
}

// wantNoFullNumber checks that neither the number nor its national digits
// appear anywhere on the page: the link can reach other eyes.
func (p shownPage) wantNoFullNumber(t *testing.T, number string) {
	t.Helper()
	national := strings.TrimPrefix(number, "+49")
	if strings.Contains(p.HTML, number) || strings.Contains(p.HTML, national) {
		t.Fatalf("the page shows the full number %s:\n%s", number, p.HTML)
	}
}

var titleInPage = regexp.MustCompile(`<h1 id="title">([^<]*)</h1>`)

// pageTitle is the title the templates give a kind of page, so that the
// tests tell the pages apart without copying their words.
func pageTitle(t *testing.T, kind templates.PageKind, lang string) string {
	t.Helper()
	var b strings.Builder
	if err := templates.RenderPage(&b, templates.Page{Kind: kind, Lang: lang}); err != nil {
		t.Fatal(err)
	}
	m := titleInPage.FindStringSubmatch(b.String())
	if m == nil {
		t.Fatalf("no <h1 id=\"title\"> in the %s page %d:\n%s", lang, kind, b.String())
	}
	return strings.TrimSpace(html.UnescapeString(m[1]))
}

// saveScreenshot keeps a picture of the tab in the test's temporary
// directory, and in USERPHONE_TEST_SCREENSHOTS, if set, for a person to
// look at.
func saveScreenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(t.TempDir(), name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("USERPHONE_TEST_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name+"-"+path.Base(t.Name())+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", file)
	}
}

// The whole way a person goes: the link in the e-mail that a real SMTP
// server received, opened in the browser, and the click on Confirm; the SMS
// then reaches the provider.
func TestTheLinkInTheReceivedEmailConfirmsInABrowser(t *testing.T) {
	browser := startBrowser(t)
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			h, p := realDelivery(t, d, testservers.StartSMTP(t), jobs.Config{})
			tab := openTab(t, browser)
			tok, err := h.keys.Mint(userphone.Identity{Subject: "frida", Email: "frida@example.com", Locale: "de", Scopes: auth.AllScopes}, time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			h.verifyNumberVia(p, tok, numberA)
			if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT new number: %d %s", r.StatusCode(), r.Body)
			}
			eventually(t, "the e-mail", func() bool { return len(p.smtp.To("frida@example.com")) == 1 })
			mail := p.smtp.To("frida@example.com")[0]
			href := regexp.MustCompile(`href="([^"]*/user/phone/confirm\?token=[^"]+)"`).FindStringSubmatch(mail.HTML)
			if href == nil {
				t.Fatalf("no confirmation link in the HTML part:\n%s", mail.HTML)
			}
			page := openPage(t, tab, html.UnescapeString(href[1]))
			page.want(t, http.StatusOK, "de", templates.PageConfirm)
			if p.smsTo(numberB) != 0 {
				t.Fatal("opening the link sent an SMS")
			}
			resp, err := chromedp.RunResponse(tab, chromedp.Click(chromedp.ID("confirm")))
			if err != nil {
				t.Fatalf("clicking Confirm: %v", err)
			}
			readPage(t, tab, resp).want(t, http.StatusOK, "de", templates.PageConfirmed)
			eventually(t, "the SMS", func() bool { return p.smsTo(numberB) == 1 })
			if v := h.verify(tok, p.lastCode(t, numberB)); v.StatusCode() != http.StatusOK {
				t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
			}
		})
	}
}
