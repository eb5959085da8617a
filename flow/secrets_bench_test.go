package flow

import (
	"bytes"
	"testing"
)

// The HMACs on the hot paths: a verify hashes the code it is sent, a
// message derives its code.
func BenchmarkCodeHash(b *testing.B) {
	s := &Service{cfg: Config{Secret: bytes.Repeat([]byte{7}, 32)}}
	b.ReportAllocs()
	for b.Loop() {
		s.codeHash("0b6f2a4e-6d0c-4c1e-9a55-2f0d5c1b7e21", "123456")
	}
}

func BenchmarkSMSCode(b *testing.B) {
	s := &Service{cfg: Config{Secret: bytes.Repeat([]byte{7}, 32)}}
	b.ReportAllocs()
	for b.Loop() {
		s.smsCode("0b6f2a4e-6d0c-4c1e-9a55-2f0d5c1b7e21", 1)
	}
}
