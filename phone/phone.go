// Package phone owns what the service knows about phone numbers: turning
// what a user typed into E.164, deciding whether a number can receive our
// SMS, and showing a number without giving it away.
package phone

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/pace/userphone"
)

// maxInputLen bounds the raw input so the parser never sees more than a
// person could reasonably type for one number.
const maxInputLen = 32

func invalid(detail string) *userphone.Error {
	return &userphone.Error{Code: userphone.CodeInvalidPhoneNumber, Detail: detail, Field: userphone.FieldPhoneNumber}
}

// Normalize parses a number typed by a user and returns it in E.164.
//
// The number must be in international format: there is no default region,
// because guessing one from a locale would turn a typo into someone else's
// number. Only numbers that can receive SMS are accepted. Errors are
// *userphone.Error with CodeInvalidPhoneNumber.
func Normalize(raw string) (string, error) {
	if utf8.RuneCountInString(raw) > maxInputLen {
		return "", invalid("The phone number is too long; enter one number in international format, e.g. +49 151 12345678.")
	}
	s := strip(raw)
	if s == "" {
		return "", invalid("The phone number is empty; enter it in international format, e.g. +49 151 12345678.")
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	digits, plus := strings.CutPrefix(s, "+")
	if !onlyDigits(digits) {
		return "", invalid("The phone number may contain only digits, a leading + and spaces, dashes, dots, slashes or brackets.")
	}
	if !plus {
		return "", invalid("The phone number is in national format; use the international format with + and the country code, e.g. +49 151 12345678.")
	}
	if digits == "" {
		return "", invalid("The phone number has no digits after the +; add the country code and the number, e.g. +49 151 12345678.")
	}

	n, err := phonenumbers.Parse(s, "")
	if err != nil {
		if errors.Is(err, phonenumbers.ErrInvalidCountryCode) {
			return "", invalid("The country code of the phone number is unknown; check the digits after the +.")
		}
		return "", invalid("The phone number is not a valid number; check the country code and the digits.")
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", invalid("The phone number is not a valid number; check the country code and the digits.")
	}
	if why := cannotReceiveSMS(phonenumbers.GetNumberType(n)); why != "" {
		return "", invalid("The phone number is " + why + ", which cannot receive SMS; enter a mobile number.")
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// strip drops the separators people use to group digits.
func strip(raw string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', '.', '/', '(', ')', '[', ']':
			return -1
		}
		return r
	}, raw)
}

// onlyDigits accepts ASCII digits only: libphonenumber would also read
// letters as keypad digits and other scripts' digits, which we refuse so
// that what is stored is what the user meant.
func onlyDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cannotReceiveSMS names the type of a number that cannot get our SMS, or
// returns "" for one that can. FIXED_LINE_OR_MOBILE is accepted because
// some regions (e.g. the US) do not tell the two apart.
func cannotReceiveSMS(t phonenumbers.PhoneNumberType) string {
	switch t {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return ""
	case phonenumbers.FIXED_LINE:
		return "a fixed-line number"
	case phonenumbers.TOLL_FREE:
		return "a toll-free number"
	case phonenumbers.PREMIUM_RATE:
		return "a premium-rate number"
	case phonenumbers.SHARED_COST:
		return "a shared-cost number"
	case phonenumbers.VOIP:
		return "a VoIP number"
	case phonenumbers.PERSONAL_NUMBER:
		return "a personal (forwarding) number"
	case phonenumbers.PAGER:
		return "a pager number"
	case phonenumbers.UAN:
		return "a company (UAN) number"
	case phonenumbers.VOICEMAIL:
		return "a voicemail number"
	default:
		return "of an unknown type"
	}
}

const bullets = "••••"

// Mask shows an E.164 number partly hidden for pages and e-mails:
// "+", the country calling code, a space, four bullets, a space, and the
// last 3 digits of the national number if it has 9 or more digits, else
// the last 2. E.g. "+4915112345678" becomes "+49 •••• 678" and the
// Norwegian "+4741234567" becomes "+47 •••• 67".
//
// The bullets are always four so the mask does not reveal the length, and
// at least 6 digits stay hidden in national numbers of 8 or more digits;
// one shorter than 6 digits shows no digits at all. Anything that does not
// parse becomes "••••".
func Mask(e164 string) string {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil || n.GetCountryCode() == 0 {
		return bullets
	}
	nsn := phonenumbers.GetNationalSignificantNumber(n)
	show := 2
	if len(nsn) >= 9 {
		show = 3
	}
	if len(nsn) < show+4 {
		// Too short to show anything without giving most of it away.
		show = 0
	}
	m := "+" + strconv.Itoa(int(n.GetCountryCode())) + " " + bullets
	if show > 0 {
		m += " " + nsn[len(nsn)-show:]
	}
	return m
}

// Region returns the ISO 3166-1 region of an E.164 number ("DE"), or ""
// when there is none: for input that does not parse, an unassigned country
// code, or a non-geographic number such as +882 (libphonenumber's "001").
func Region(e164 string) string {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	switch r := phonenumbers.GetRegionCodeForNumber(n); r {
	case "001", "ZZ":
		return ""
	default:
		return r
	}
}

// prefixHidesDigits is how many trailing digits Prefix leaves out: ranges
// are rented out to fraudsters in blocks of 10,000 numbers or fewer.
const prefixHidesDigits = 4

// Prefix returns the range an E.164 number belongs to, as libphonenumber
// splits it: the country code, the national destination code, and the
// subscriber number without its last four digits ("+491511234" for
// +49 151 12345678). One rented range spread over many source networks
// shares it. Input that does not parse is its own prefix.
func Prefix(e164 string) string {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return e164
	}
	nsn := phonenumbers.GetNationalSignificantNumber(n)
	keep := max(phonenumbers.GetLengthOfNationalDestinationCode(n), len(nsn)-prefixHidesDigits, 1)
	keep = min(keep, len(nsn))
	return "+" + strconv.Itoa(int(n.GetCountryCode())) + nsn[:keep]
}

// NonGeographic reports whether an E.164 number belongs to no country:
// the global networks of satellite phones and international carriers
// (+870, +881, +882, +883), freephone and shared-cost numbers (+800,
// +808) and the like, libphonenumber's region "001". Their SMS cost many
// times a mobile's and are the favourite destination of SMS pumping.
func NonGeographic(e164 string) bool {
	n, err := phonenumbers.Parse(e164, "")
	return err == nil && phonenumbers.GetRegionCodeForNumber(n) == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
}
