package flow

import (
	"fmt"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// Test numbers (Config.TestNumbers) let staging set-ups and contract tests
// through the SMS step without a phone: a change to one sends no SMS and
// calls no provider, and its fixed code verifies it. They stay out of what
// guards SMS and phones (the budget, the number's, network's and range's
// SMS limits, the strangers' share, the number's guesses for the day):
// nothing is sent, and a code everyone who has the setting knows has
// nothing to guard. What guards accounts still applies: the cool-down,
// the user's changes, the change's attempts.
//
// After Config.TestNumbersUntil they stop working instead of turning into
// ordinary numbers: a forgotten staging suite then fails with a clear
// answer, rather than texting whoever really has such a number.

// checkTestNumbers refuses test numbers that the service would not take
// from a user: a staging set-up should go through the checks production
// makes.
func checkTestNumbers(s *Service) error {
	for _, number := range s.cfg.TestNumbers.Numbers() {
		if err := s.checkDestination(number); err != nil {
			return fmt.Errorf("flow: test number %s is not accepted here: %w", phone.Mask(number), err)
		}
	}
	return nil
}

// TestNumbersOver reports whether the test numbers' end has passed at now;
// without an end, never.
func (c Config) TestNumbersOver(now time.Time) bool {
	return !c.TestNumbersUntil.IsZero() && !now.Before(c.TestNumbersUntil)
}

// testCode returns number's fixed code, when it is a test number and the
// test numbers have not ended.
func (s *Service) testCode(number string, now time.Time) (code string, ok bool) {
	code, ok = s.cfg.TestNumbers[number]
	return code, ok && !s.testNumbersEnded(now)
}

// endedTestNumber reports whether number is a test number whose end has
// passed.
func (s *Service) endedTestNumber(number string, now time.Time) bool {
	_, test := s.cfg.TestNumbers[number]
	return test && s.testNumbersEnded(now)
}

// testNumbersEnded reports whether the test numbers' end has passed, and
// says so in the log the first time.
func (s *Service) testNumbersEnded(now time.Time) bool {
	if !s.cfg.TestNumbersOver(now) {
		return false
	}
	s.endOfTestNumbers.Do(func() {
		s.log.Warn("the test numbers have ended: requests for them are refused; renew their end date or remove them",
			"test_numbers", len(s.cfg.TestNumbers), "until", s.cfg.TestNumbersUntil.Format(time.RFC3339))
	})
	return true
}

// refuseEndedTestNumber refuses a test number past the test numbers' end.
func (s *Service) refuseEndedTestNumber(number string, now time.Time) error {
	if !s.endedTestNumber(number, now) {
		return nil
	}
	return notAllowed("This is a test number, and the test numbers of this deployment have ended; use another number, or ask its operator to renew them.")
}

// issueTestCode sets c's code to its number's fixed code and records it as
// a test code: nothing is queued, and no SMS limit counts it.
func (s *Service) issueTestCode(t *txn, c *userphone.PhoneChange, code string) error {
	s.markSent(c, t.now)
	c.CodeHash = s.codeHash(c.ID, code)
	return s.record(t, userphone.EventTestCode, c, "")
}
