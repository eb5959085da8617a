package testenv

import "fmt"

// MobileNumber is the n-th of a run of German mobile numbers (n below
// 10,000), each in a range of 10,000 of its own (phone.Prefix), so that
// only the limit a test is about meets them.
func MobileNumber(n int) string { return fmt.Sprintf("+49151%04d%04d", n, n) }
