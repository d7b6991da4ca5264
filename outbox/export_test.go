package outbox

// SetPrefillMin sets the file size from which an outbox prefills (and the
// least it keeps ahead), for tests whose files are small; the function it
// returns puts it back.
func SetPrefillMin(n int64) (restore func()) {
	old := prefillMin
	prefillMin = n
	return func() { prefillMin = old }
}
