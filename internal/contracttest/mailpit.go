package contracttest

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pace/userphone/openapi"
	phonenumbers "github.com/pace/userphone/phone"
)

// mailWait bounds the wait for the confirmation e-mail: the service sends
// it through its queue within moments; a minute covers a provider's retry.
const mailWait = time.Minute

// mailpit reads the mailbox of a mailpit (github.com/axllent/mailpit)
// through its HTTP API: GET /api/v1/search?query=… lists the messages,
// newest first, and GET /api/v1/message/{ID} gives one with its text.
type mailpit struct {
	base   string
	client *http.Client
}

// confirmLink finds the confirmation link in an e-mail's text: the
// instance's public URL, whatever it is, then the confirmation path.
var confirmLink = regexp.MustCompile(`https?://[^\s"'<>]+?` + regexp.QuoteMeta(openapi.BasePath+openapi.ConfirmPath) + `\?token=[A-Za-z0-9_-]+`)

// maxMailpitAnswer is the largest answer of mailpit's that a run reads:
// a list of 200 messages, or one message with its HTML.
const maxMailpitAnswer = 4 << 20

func (m mailpit) get(ctx context.Context, path string, out any) error {
	shown := redacted(m.base)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(m.base, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("-mailpit-url %s is not a URL; give the base of mailpit's HTTP API, e.g. http://127.0.0.1:8025", shown)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit cannot be reached at %s: %w; check -mailpit-url", shown, unwrapURLError(err))
	}
	defer resp.Body.Close()
	body, err := readAnswer(resp.Body, maxMailpitAnswer)
	switch {
	case err != nil:
		return fmt.Errorf("mailpit's answer to GET %s: %w", pathOnly(path), err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("mailpit answered %d to GET %s; is -mailpit-url the base of mailpit's HTTP API?", resp.StatusCode, pathOnly(path))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("mailpit's answer to GET %s is not its JSON (%w); is -mailpit-url the base of mailpit's HTTP API?", pathOnly(path), err)
	}
	return nil
}

// messageIDs lists the messages to addr that mailpit holds now, newest
// first, as mailpit lists them.
func (m mailpit) messageIDs(ctx context.Context, addr string) ([]string, error) {
	var list struct {
		Messages []struct {
			ID string `json:"ID"`
		} `json:"messages"`
	}
	q := url.Values{"query": {`to:"` + addr + `"`}, "limit": {"200"}}
	if err := m.get(ctx, "/api/v1/search?"+q.Encode(), &list); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list.Messages))
	for _, msg := range list.Messages {
		ids = append(ids, msg.ID)
	}
	return ids, nil
}

// mailedLink is the confirmation link an e-mail holds, and its subject.
type mailedLink struct {
	link    *url.URL
	subject string
}

// waitForLink waits for the newest message to addr that is not in before
// and holds a confirmation link for number. Other messages (a notice
// that someone asked for the user's number, the e-mail of another run's
// change to another number) are passed over.
func (m mailpit) waitForLink(ctx context.Context, addr string, before map[string]bool, number string) (mailedLink, error) {
	deadline := time.Now().Add(mailWait)
	passedOver := map[string]bool{}
	for {
		ids, err := m.messageIDs(ctx, addr)
		if err != nil {
			return mailedLink{}, err
		}
		for _, id := range ids {
			if before[id] || passedOver[id] {
				continue
			}
			found, ok, err := m.linkIn(ctx, id, number)
			if err != nil || ok {
				return found, err
			}
			passedOver[id] = true
		}
		if time.Now().After(deadline) {
			return mailedLink{}, fmt.Errorf("no e-mail with a confirmation link reached %s in mailpit within %s; is the instance's USERPHONE_SMTP_URL this mailpit's SMTP port?", addr, mailWait)
		}
		select {
		case <-ctx.Done():
			return mailedLink{}, fmt.Errorf("waiting for the confirmation e-mail: %w", errTimeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// maskedNumber is a number as the e-mail shows it (phone.Mask):
// "+49 •••• 002".
var maskedNumber = regexp.MustCompile(`\+[0-9]{1,3} •••• ?[0-9]*`)

// linkIn reads message id and returns its confirmation link, if it has
// one and, when it shows the number the change is to, shows number.
func (m mailpit) linkIn(ctx context.Context, id, number string) (mailedLink, bool, error) {
	var msg struct {
		Subject, Text, HTML string
	}
	if err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id), &msg); err != nil {
		return mailedLink{}, false, err
	}
	text := msg.Text + "\n" + html.UnescapeString(msg.HTML)
	raw := confirmLink.FindString(text)
	if raw == "" {
		return mailedLink{}, false, nil
	}
	if shown := strings.TrimSpace(maskedNumber.FindString(text)); shown != "" && shown != phonenumbers.Mask(number) {
		return mailedLink{}, false, nil
	}
	link, err := url.Parse(raw)
	if err != nil {
		return mailedLink{}, false, fmt.Errorf("the e-mail's confirmation link does not parse: %w", unwrapURLError(err))
	}
	return mailedLink{link: link, subject: msg.Subject}, true, nil
}

// confirmByEmail finds the e-mail to number in mailpit, opens its link's
// page and submits the page's form, as the user would. It returns the
// link and the form.
func (r *runner) confirmByEmail(ctx context.Context, mail mailpit, before map[string]bool, number string) (*url.URL, confirmForm) {
	link := &url.URL{}
	r.flowStep(ctx, "the confirmation e-mail", func(ctx context.Context, s *step) (string, error) {
		found, err := mail.waitForLink(ctx, r.email, before, number)
		if err != nil {
			return "", err
		}
		if err := r.leadsToTheInstance("the e-mail's link", found.link); err != nil {
			return "", err
		}
		link = found.link
		return fmt.Sprintf("mailpit holds %q to %s, with the link to %s", found.subject, r.email, pathOnly(link.String())), nil
	})
	var form confirmForm
	r.flowStep(ctx, "the confirmation page", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, request{method: http.MethodGet, url: link.String(), path: openapi.ConfirmPath + "?" + link.RawQuery})
		if err != nil {
			return "", err
		}
		if err := expect(a, http.StatusOK); err != nil {
			return "", err
		}
		if form, err = readConfirmForm(a.body, link); err != nil {
			return "", fmt.Errorf("%s: %w", a.label(), err)
		}
		if err := r.leadsToTheInstance("the confirmation form", form.action); err != nil {
			return "", fmt.Errorf("%s: %w", a.label(), err)
		}
		return a.label() + ": a form that posts the token to " + pathOnly(form.action.String()), nil
	})
	r.flowStep(ctx, "confirm the change", func(ctx context.Context, s *step) (string, error) {
		// As the page's own form posts it; a browser marks it same-origin.
		a, err := s.send(ctx, request{method: form.method, url: form.action.String(), path: openapi.ConfirmPath,
			contentType: formMedia, body: []byte(form.fields.Encode()), header: http.Header{"Sec-Fetch-Site": {"same-origin"}}})
		if err != nil {
			return "", err
		}
		return a.label() + ": confirmed, the code is on its way", expect(a, http.StatusOK)
	})
	return link, form
}

// leadsToTheInstance checks that u, a link the instance handed out, goes
// to its confirmation page under its public URL (-public-url, or the
// root of -url): the run follows it with the user's link token, which
// must not go to another host.
func (r *runner) leadsToTheInstance(what string, u *url.URL) error {
	want := r.confirmURL
	if strings.EqualFold(u.Scheme, want.Scheme) && hostWithPort(u) == hostWithPort(want) && u.Path == want.Path {
		return nil
	}
	got := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path} // the query holds the link's token
	return fmt.Errorf("%s goes to %s, not %s; is the instance's USERPHONE_PUBLIC_URL right, or give -public-url", what, got.Redacted(), want.Redacted())
}

// hostWithPort is u's host and port, the scheme's default port written
// out, lower case.
func hostWithPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// confirmForm is the form of the confirmation page.
type confirmForm struct {
	method string
	action *url.URL
	fields url.Values
}

var (
	formTag   = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputTag  = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attribute = regexp.MustCompile(`(?is)([a-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

// readConfirmForm reads the page's form: where and how it posts, and its
// fields, which must carry the token.
func readConfirmForm(page []byte, pageURL *url.URL) (confirmForm, error) {
	m := formTag.FindSubmatch(page)
	if m == nil {
		return confirmForm{}, fmt.Errorf("the confirmation page has no form to confirm with")
	}
	attrs := attributes(m[1])
	f := confirmForm{method: strings.ToUpper(attrs["method"]), fields: url.Values{}}
	if f.method != http.MethodPost {
		return confirmForm{}, fmt.Errorf("the confirmation page's form uses %q, want POST as the spec says", attrs["method"])
	}
	action, err := pageURL.Parse(attrs["action"])
	if err != nil {
		return confirmForm{}, fmt.Errorf("the form's action %q is not a URL: %w", attrs["action"], err)
	}
	f.action = action
	for _, in := range inputTag.FindAllSubmatch(m[2], -1) {
		a := attributes(in[1])
		if a["name"] != "" {
			f.fields.Add(a["name"], a["value"])
		}
	}
	if f.fields.Get("token") == "" {
		return confirmForm{}, fmt.Errorf("the confirmation page's form has no token field, which the spec's ConfirmPhoneChangeForm requires")
	}
	return f, nil
}

func attributes(tag []byte) map[string]string {
	out := map[string]string{}
	for _, a := range attribute.FindAllSubmatch(tag, -1) {
		out[strings.ToLower(string(a[1]))] = html.UnescapeString(string(a[2]) + string(a[3]))
	}
	return out
}
