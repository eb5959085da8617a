package contracttest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
)

// The media types of the flow's requests, as PACE's clients send them.
const (
	plainJSON = "application/json"
	formMedia = "application/x-www-form-urlencoded"
)

// phoneResource is a PhoneDocument's attributes, as the spec generates
// them.
type phoneResource api.PhoneAttributes

func (p phoneResource) String() string {
	s := fmt.Sprintf("%s verified=%v", p.PhoneNumber, p.Verified)
	if c := p.PendingChange; c != nil {
		s += fmt.Sprintf(", pending %s %s", c.PhoneNumber, c.Status)
	}
	return s
}

// verifiedNumber is the user's verified number, or "".
func (p phoneResource) verifiedNumber() string {
	if p.Verified {
		return p.PhoneNumber
	}
	return ""
}

func readPhone(a *answer) (phoneResource, error) {
	var doc api.PhoneDocument
	if err := json.Unmarshal(a.body, &doc); err != nil {
		return phoneResource{}, fmt.Errorf("%s: the body is not a phone document: %w", a.label(), err)
	}
	return phoneResource(doc.Data.Attributes), nil
}

// flowStep is step for the flow's steps, which build on each other:
// after one failed, or while a reason to skip holds, the rest are
// reported as skipped.
func (r *runner) flowStep(ctx context.Context, name string, fn stepFunc) {
	switch {
	case r.broken != "":
		fn = skip(skipped{reason: "an earlier step of the flow failed (" + r.broken + ")"})
	case r.skipFlow.reason != "":
		fn = skip(r.skipFlow)
	}
	r.step(ctx, "flow: "+name, fn)
	if last := r.report.Results[len(r.report.Results)-1]; last.Outcome == Failed {
		r.broken = name
	}
}

func skip(why skipped) stepFunc {
	return func(context.Context, *step) (string, error) { return "", why }
}

// runFlow walks the documented flow for the token's user from the state
// it finds: a first number when the user has no verified one, then a
// change to a second test number confirmed from the e-mail.
func (r *runner) runFlow(ctx context.Context) {
	var now phoneResource
	r.flowStep(ctx, "the user's state", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, r.api(http.MethodGet, r.phonePath, "", nil))
		if err != nil {
			return "", err
		}
		switch a.status {
		case http.StatusNotFound:
			return a.label() + ": no number yet", nil
		case http.StatusOK, http.StatusCreated:
			now, err = readPhone(a)
			return a.label() + ": " + now.String(), err
		}
		return "", expect(a, http.StatusOK)
	})
	if len(r.cfg.TestNumbers) == 0 {
		r.skipFlow = skipped{"no -test-numbers: the flow needs a test number of the instance and its fixed code", []string{"-test-numbers"}}
	}
	verified := now.verifiedNumber()
	if verified == "" {
		verified = r.otherTestNumber("")
		r.firstNumber(ctx, verified)
	} else {
		// Calls off a change an earlier run left open.
		r.sameNumberAgain(ctx, verified)
	}
	r.changeByEmail(ctx, verified)
	r.skipFlow = skipped{}
}

// otherTestNumber is the first test number other than number, or "".
func (r *runner) otherTestNumber(number string) string {
	for _, n := range r.cfg.TestNumbers.Numbers() {
		if n != number {
			return n
		}
	}
	return ""
}

// firstNumber sets and verifies a first number: no e-mail, the code at
// once.
func (r *runner) firstNumber(ctx context.Context, number string) {
	r.flowStep(ctx, "first number", func(ctx context.Context, s *step) (string, error) {
		return r.putNumber(ctx, s, number, http.StatusCreated, func(p phoneResource) bool {
			return !p.Verified && p.PhoneNumber == number && p.PendingChange != nil && p.PendingChange.Status == api.AwaitingCode
		})
	})
	r.flowStep(ctx, "check while the code is awaited", func(ctx context.Context, s *step) (string, error) {
		return r.checkPhone(ctx, s, http.StatusCreated, func(p phoneResource) bool { return !p.Verified && p.PhoneNumber == number })
	})
	r.wrongCode(ctx)
	r.verifyNumber(ctx, "verify the first number", number)
	r.flowStep(ctx, "check the verified number", func(ctx context.Context, s *step) (string, error) {
		return r.checkPhone(ctx, s, http.StatusOK, func(p phoneResource) bool { return p.Verified && p.PhoneNumber == number && p.PendingChange == nil })
	})
	r.sameNumberAgain(ctx, number)
	r.nothingPending(ctx, number)
}

// sameNumberAgain asks for the verified number: 200, and no change is
// left open.
func (r *runner) sameNumberAgain(ctx context.Context, number string) {
	r.flowStep(ctx, "the verified number again", func(ctx context.Context, s *step) (string, error) {
		return r.putNumber(ctx, s, number, http.StatusOK, func(p phoneResource) bool {
			return p.Verified && p.PhoneNumber == number && p.PendingChange == nil
		})
	})
}

// nothingPending verifies once a run while no change is open.
func (r *runner) nothingPending(ctx context.Context, number string) {
	if r.nothingPendingSent {
		return
	}
	r.nothingPendingSent = true
	r.flowStep(ctx, "verify with nothing pending", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, r.api(http.MethodPut, r.verifyPath, plainJSON, codeBody(r.cfg.TestNumbers[number])))
		if err != nil {
			return "", err
		}
		return a.label() + " no-pending-verification", expectError(a, http.StatusNotFound, "no-pending-verification")
	})
}

// changeByEmail walks a change away from the verified number, the part
// of the flow the confirmation e-mail guards: the request, the e-mail
// and its page, the confirmation, the code; then what the used link and
// a code with nothing pending answer.
func (r *runner) changeByEmail(ctx context.Context, verified string) {
	target := r.otherTestNumber(verified)
	r.skipWithoutWhatAChangeNeeds(target)
	mail := mailpit{base: r.cfg.MailpitURL, client: r.client}
	before := r.askForAChange(ctx, mail, verified, target)
	link, form := r.confirmByEmail(ctx, mail, before, target)
	r.wrongCode(ctx)
	r.verifyNumber(ctx, "verify the second number", target)
	r.flowStep(ctx, "check the new number", func(ctx context.Context, s *step) (string, error) {
		return r.checkPhone(ctx, s, http.StatusOK, func(p phoneResource) bool { return p.Verified && p.PhoneNumber == target && p.PendingChange == nil })
	})
	r.usedLinkIsGone(ctx, link, form)
	r.nothingPending(ctx, target)
}

// skipWithoutWhatAChangeNeeds skips the change when an input it needs is
// missing: a second test number, mailpit, the address the e-mail goes
// to. The skip names every missing input, so that one more run has all.
func (r *runner) skipWithoutWhatAChangeNeeds(target string) {
	if r.broken != "" {
		return
	}
	why := r.skipFlow
	why.needs = slices.Clone(why.needs)
	if why.reason == "" && target == "" {
		why = skipped{"the user's verified number is the only test number: give -test-numbers a second one, or use a fresh user",
			[]string{"a second test number in -test-numbers"}}
	}
	if r.cfg.MailpitURL == "" {
		why.reason = cmp.Or(why.reason, "no -mailpit-url: a change away from a verified number waits for the confirmation e-mail")
		why.needs = append(why.needs, "-mailpit-url")
	}
	if r.email == "" {
		why.reason = cmp.Or(why.reason, "the confirmation e-mail's address is unknown: the token has no email claim; give -email")
		why.needs = append(why.needs, "-email")
	}
	r.skipFlow = why
}

// askForAChange asks to change from verified to target, and checks that
// the code waits for the e-mail's confirmation. It returns the messages
// mailpit held before, to tell the new e-mail from them.
func (r *runner) askForAChange(ctx context.Context, mail mailpit, verified, target string) (before map[string]bool) {
	r.flowStep(ctx, "change to a second number", func(ctx context.Context, s *step) (string, error) {
		ids, err := mail.messageIDs(ctx, r.email)
		if err != nil {
			return "", err
		}
		before = map[string]bool{}
		for _, id := range ids {
			before[id] = true
		}
		return r.putNumber(ctx, s, target, http.StatusCreated, func(p phoneResource) bool {
			return p.Verified && p.PhoneNumber == verified && p.PendingChange != nil &&
				p.PendingChange.PhoneNumber == target && p.PendingChange.Status == api.AwaitingEmailConfirmation
		})
	})
	r.flowStep(ctx, "verify before the e-mail is confirmed", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, r.api(http.MethodPut, r.verifyPath, plainJSON, codeBody(r.cfg.TestNumbers[target])))
		if err != nil {
			return "", err
		}
		return a.label() + " email-confirmation-pending", expectError(a, http.StatusConflict, "email-confirmation-pending")
	})
	return before
}

// usedLinkIsGone opens the used link and posts its form again: both
// answer that the change is over.
func (r *runner) usedLinkIsGone(ctx context.Context, link *url.URL, form confirmForm) {
	r.flowStep(ctx, "the used link", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, request{method: http.MethodGet, url: link.String(), path: openapi.ConfirmPath + "?" + link.RawQuery})
		if err != nil {
			return "", err
		}
		return a.label() + ": the change is over", expect(a, http.StatusGone)
	})
	r.flowStep(ctx, "the used link confirmed again", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, request{method: form.method, url: form.action.String(), path: openapi.ConfirmPath,
			contentType: formMedia, body: []byte(form.fields.Encode())})
		if err != nil {
			return "", err
		}
		return a.label() + ": the change is over", expect(a, http.StatusGone)
	})
}

// wrongCode sends a wrong code once a run, while a code is awaited.
func (r *runner) wrongCode(ctx context.Context) {
	if r.wrongCodeSent {
		return
	}
	r.wrongCodeSent = true
	r.flowStep(ctx, "a wrong code", func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, r.api(http.MethodPut, r.verifyPath, plainJSON, codeBody(wrongCode(r.cfg.TestNumbers))))
		if err != nil {
			return "", err
		}
		return a.label() + " invalid-code", expectError(a, http.StatusUnprocessableEntity, "invalid-code")
	})
}

// wrongCode is a well-formed code that is no test number's code.
func wrongCode(numbers map[string]string) string {
	codes := make([]string, 0, len(numbers))
	for _, c := range numbers {
		codes = append(codes, c)
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !slices.Contains(codes, c) {
			return c
		}
	}
	return "987654"
}

func codeBody(code string) []byte {
	b, _ := json.Marshal(map[string]string{"code": code})
	return b
}

// putNumber asks for number and checks the status and the resource.
func (r *runner) putNumber(ctx context.Context, s *step, number string, status int, ok func(phoneResource) bool) (string, error) {
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"type": "phone", "attributes": map[string]string{"phoneNumber": number}}})
	a, err := s.send(ctx, r.api(http.MethodPut, r.phonePath, openapi.MediaTypeJSONAPI, body))
	if err != nil {
		return "", err
	}
	return r.expectPhone(a, status, ok)
}

// verifyNumber sends number's fixed code and checks that the number is
// now verified.
func (r *runner) verifyNumber(ctx context.Context, name, number string) {
	r.flowStep(ctx, name, func(ctx context.Context, s *step) (string, error) {
		a, err := s.send(ctx, r.api(http.MethodPut, r.verifyPath, plainJSON, codeBody(r.cfg.TestNumbers[number])))
		if err != nil {
			return "", err
		}
		return r.expectPhone(a, http.StatusOK, func(p phoneResource) bool { return p.Verified && p.PhoneNumber == number && p.PendingChange == nil })
	})
}

// checkPhone reads the user's phone and checks the status and the
// resource.
func (r *runner) checkPhone(ctx context.Context, s *step, status int, ok func(phoneResource) bool) (string, error) {
	a, err := s.send(ctx, r.api(http.MethodGet, r.phonePath, "", nil))
	if err != nil {
		return "", err
	}
	return r.expectPhone(a, status, ok)
}

func (r *runner) expectPhone(a *answer, status int, ok func(phoneResource) bool) (string, error) {
	if err := expect(a, status); err != nil {
		return "", err
	}
	p, err := readPhone(a)
	if err != nil {
		return "", err
	}
	if !ok(p) {
		return "", fmt.Errorf("%s: the phone is %s, not what the flow documents here", a.label(), p)
	}
	return a.label() + ": " + p.String(), nil
}

// api is a request of the run's user to the API.
func (r *runner) api(method, path, contentType string, body []byte) request {
	return request{method: method, path: path, bearer: r.token, contentType: contentType, body: body}
}
