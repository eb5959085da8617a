package phone

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// TestNumbers maps a test number, in E.164, to its fixed 6-digit code. A
// change to a test number sends no SMS: the fixed code verifies it. Staging
// set-ups and the contract test use them to get through the SMS step
// without a phone.
type TestNumbers map[string]string

// fixedCode is what a test number's code must look like: the 6 digits of
// every code the service sends.
var fixedCode = regexp.MustCompile(`^[0-9]{6}$`)

// LoadTestNumbers reads the test numbers of a setting's value: pairs of a
// number and its code, "+4915112345678=123456,+4915112345679=654321", or
// the path of a file (a value with no "=" and no "+") holding such pairs,
// separated by commas or new lines, with "#" starting a comment. An empty
// value is no test numbers.
func LoadTestNumbers(value string) (TestNumbers, error) {
	value = strings.TrimSpace(value)
	if value == "" || strings.ContainsAny(value, "=+") {
		return ParseTestNumbers(value)
	}
	text, err := os.ReadFile(value)
	if err != nil {
		return nil, fmt.Errorf("cannot read the test numbers file: %w; give pairs like +4915112345678=123456, or the path of a file of them", err)
	}
	n, err := ParseTestNumbers(string(text))
	if err == nil && len(n) == 0 {
		err = fmt.Errorf("the test numbers file %s holds no number; add lines like +4915112345678=123456", value)
	}
	return n, err
}

// ParseTestNumbers reads pairs of a number and its 6-digit code, separated
// by commas or new lines; "#" starts a comment. A number may appear once.
func ParseTestNumbers(text string) (TestNumbers, error) {
	numbers := TestNumbers{}
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, pair := range strings.Split(line, ",") {
			if pair = strings.TrimSpace(pair); pair != "" {
				if err := numbers.add(pair); err != nil {
					return nil, err
				}
			}
		}
	}
	return numbers, nil
}

func (n TestNumbers) add(pair string) error {
	raw, code, ok := strings.Cut(pair, "=")
	if !ok {
		return fmt.Errorf("test number %q has no code; write it as number=code, e.g. +4915112345678=123456", pair)
	}
	number, err := Normalize(raw)
	if err != nil {
		return fmt.Errorf("test number %q: %w", strings.TrimSpace(raw), err)
	}
	if code = strings.TrimSpace(code); !fixedCode.MatchString(code) {
		return fmt.Errorf("the code of test number %s must be 6 digits, like every code the service sends", number)
	}
	if _, dup := n[number]; dup {
		return fmt.Errorf("test number %s is given twice; give each number once", number)
	}
	n[number] = code
	return nil
}

// Numbers lists the test numbers in the order of their digits.
func (n TestNumbers) Numbers() []string {
	list := make([]string, 0, len(n))
	for number := range n {
		list = append(list, number)
	}
	slices.Sort(list)
	return list
}
