// Package testutil holds the few test helpers that more than one package's
// tests need. It is imported only from _test.go files.
package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers: a log
// sink or a child process's stderr that a test reads while it is written.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// EachMutation calls fn with every one-byte deletion, insertion and
// substitution of seed, the bytes inserted and substituted taken from
// alphabet: the inputs a hand-written parser's agreement test feeds it around
// a valid one. Each input is a fresh slice fn may keep.
func EachMutation(seed, alphabet []byte, fn func([]byte)) {
	for i := range seed {
		fn(append(seed[:i:i], seed[i+1:]...))
		for _, c := range alphabet {
			fn(append(seed[:i:i], append([]byte{c}, seed[i:]...)...))
			q := bytes.Clone(seed)
			q[i] = c
			fn(q)
		}
	}
}
