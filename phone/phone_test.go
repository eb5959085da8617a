package phone

import (
	"strings"
	"testing"

	"github.com/pace/userphone"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		raw    string
		want   string // "" means refused
		detail string // part of the refusal's detail
	}{
		{raw: "+49 151 12345678", want: "+4915112345678"},
		{raw: "0049 (151) 123-456-78", want: "+4915112345678"},
		{raw: "+49/151.123\t456 78", want: "+4915112345678"},
		{raw: "+1 415 555 2671", want: "+14155552671"},
		{raw: "+49 30 12345678", detail: "fixed-line number, which cannot receive SMS"},
		{raw: "+49 170 888 999 000", detail: "not a valid number"},
		{raw: "015112345678", detail: "international format with + and the country code"},
		{raw: "+49 800 1234567", detail: "toll-free number"},
		{raw: "+49 900 1234567", detail: "premium-rate number"},
		{raw: "abc", detail: "only digits"},
		{raw: "+49 151 CALL ME", detail: "only digits"},
		{raw: "+49 151 1234567８", detail: "only digits"},
		{raw: "+49+15112345678", detail: "only digits"},
		{raw: "", detail: "empty"},
		{raw: "  - ", detail: "empty"},
		{raw: "+", detail: "no digits"},
		{raw: "+999 1234567", detail: "country code"},
		{raw: "+49 151 12345678 ext 1", detail: "only digits"},
		{raw: strings.Repeat(" ", 20) + "+4915112345678", detail: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := Normalize(tt.raw)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Normalize(%q) = %q; want refusal", tt.raw, got)
			}
			e := userphone.AsError(err)
			if e == nil || e.Code != userphone.CodeInvalidPhoneNumber || e.Field != userphone.FieldPhoneNumber {
				t.Fatalf("Normalize(%q) error = %#v; want invalid-phone-number about the phoneNumber field", tt.raw, err)
			}
			if !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("detail %q does not contain %q", e.Detail, tt.detail)
			}
		})
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+4915112345678", "+49 •••• 678"},
		{"+14155552671", "+1 •••• 671"},
		{"+4741234567", "+47 •••• 67"},
		{"+4912345", "+49 ••••"},
		{"", "••••"},
		{"garbage", "••••"},
	}
	for _, tt := range tests {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRegion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+4915112345678", "DE"},
		{"+14155552671", "US"},
		{"+436641234567", "AT"},
		{"+80012345678", ""},
		{"nonsense", ""},
	}
	for _, tt := range tests {
		if got := Region(tt.in); got != tt.want {
			t.Errorf("Region(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+49 151 12345678", "0049 (151) 123-456-78", "+1 415 555 2671",
		"+49 30 12345678", "015112345678", "+49 800 1234567", "abc", "", "+", "00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := Normalize(raw)
		Mask(raw)
		Region(raw)
		if err != nil {
			if e := userphone.AsError(err); e == nil || e.Code != userphone.CodeInvalidPhoneNumber || e.Detail == "" {
				t.Fatalf("Normalize(%q) error %#v is not an invalid-phone-number *userphone.Error", raw, err)
			}
			return
		}
		if !strings.HasPrefix(got, "+") {
			t.Fatalf("Normalize(%q) = %q; want a leading +", raw, got)
		}
		again, err := Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q, but that normalizes to %q, %v", raw, got, again, err)
		}
		if m := Mask(got); strings.Contains(m, got[1:]) {
			t.Fatalf("Mask(%q) = %q shows the whole number", got, m)
		}
	})
}

// Every PUT parses its number with libphonenumber's metadata.
func BenchmarkNormalize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Normalize("+49 151 1234-5678"); err != nil {
			b.Fatal(err)
		}
	}
}

// A prefix is the country code, the destination code and the subscriber
// number without its last four digits: neighbours in one block share it.
func TestPrefix(t *testing.T) {
	for number, want := range map[string]string{
		"+4915112345678": "+491511234",
		"+4915112349999": "+491511234",
		"+4915112350000": "+491511235",
		"+14155552671":   "+1415555",
		"+436991234567":  "+43699123",
		"+881612345678":  "+88161234",
	} {
		if got := Prefix(number); got != want {
			t.Errorf("Prefix(%s) = %q, want %q", number, got, want)
		}
	}
}

func TestNonGeographic(t *testing.T) {
	for number, want := range map[string]bool{
		"+881612345678":  true, // Iridium
		"+870773111632":  true, // Inmarsat
		"+4915112345678": false,
		"+14155552671":   false,
		"not a number":   false,
	} {
		if got := NonGeographic(number); got != want {
			t.Errorf("NonGeographic(%s) = %v, want %v", number, got, want)
		}
	}
}
