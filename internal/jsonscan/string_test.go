package jsonscan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlainText(t *testing.T) {
	for _, in := range []string{`""`, `"abc"`, `"é"`, "\"\xff\"", "\"a\xc3\"", `"a\nb"`, `"\u00e9"`, `"\ud800"`, `"\ud83d\ude00"`, `"a\"b"`, `"\/"`} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(in), &want), "%s", in)
		escaped := strings.Contains(in, `\`) // as the Scanner says
		got, err := Text([]byte(in), escaped)
		require.NoError(t, err, "Text(%s)", in)
		assert.Equal(t, want, got, "Text(%s)", in)
		body, plain := Plain([]byte(in), escaped)
		if plain {
			assert.Equal(t, want, string(body), "Plain(%s)", in)
		}
		assert.Equal(t, want == in[1:len(in)-1], plain, "Plain(%s) reports whether the bytes are the text", in)
	}
}

// TestCtrlIndex checks the word-at-a-time control character search against a
// byte loop, for every byte value at every position of short and word-sized inputs.
func TestCtrlIndex(t *testing.T) {
	naive := func(b []byte) int {
		for i, c := range b {
			if c < 0x20 {
				return i
			}
		}
		return -1
	}
	for n := 0; n <= 40; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				if pos+1 < n {
					b[n-1] = 0x1f // a later control byte must not win
				}
				require.Equal(t, naive(b), ctrlIndex(b), "ctrlIndex(%q)", b)
			}
		}
	}
	assert.Equal(t, -1, ctrlIndex([]byte(strings.Repeat("\x7f\x80\xff ", 5))), "ctrlIndex(no control bytes)")
}

// TestSpecial checks the word-at-a-time search for a quote, a backslash or a
// control byte against a byte loop, for every byte value at every position,
// among bytes that borrow or carry differently.
func TestSpecial(t *testing.T) {
	naive := func(b []byte) int {
		for i, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return 8
	}
	for _, fill := range []byte{'a', ' ', '!', '#', '[', ']', 0x7f, 0x80, 0xa2, 0xdc, 0xff} {
		for pos := 0; pos < 8; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				if pos < 7 {
					b[7] = '"' // a later special byte must not win
				}
				require.Equal(t, naive(b), special(binary.LittleEndian.Uint64(b)), "special(%q)", b)
			}
		}
	}
}
