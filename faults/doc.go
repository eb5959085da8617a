// Package faults holds the fault suite of the scale-out work: a test that
// runs two or three replicas of the real binary on one PostgreSQL database
// under load, with SMS through the webhook provider to a receiver in the
// test and e-mail through a real SMTP server, and then SIGKILLs a replica,
// restarts PostgreSQL, takes the SMTP server away for 30 s and makes the
// SMS receiver answer 500 for 30 s. Afterwards every accepted change must
// have got its messages, repeated deliveries must carry one Idempotency-Key
// and the same text, no request may have seen 501, the surviving replicas
// must work without a restart, and every completed verification must still
// be there.
//
// The test restarts the shared PostgreSQL server, so it runs only when
// asked to (it is not part of go test ./...):
//
//	USERPHONE_FAULTS=1 USERPHONE_TEST_STRICT=1 go test -count=1 -run TestFaults -timeout 5m ./faults/
//
// It has no code outside its test.
package faults
