package jsonscan

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spectrastrike/shipper/internal/testutil"
)

// walkArray scans p whole as a top-level array: its elements, or the error.
func walkArray(p []byte) (elems [][]byte, isArray bool, err error) {
	s := New(p)
	if !s.Array() {
		return nil, false, nil
	}
	for s.Elem() {
		elems = append(elems, s.Value())
	}
	if !s.End() {
		err = s.Err()
		if err == nil {
			err = errNoMessage
		}
	}
	return elems, true, err
}

// checkArrayAgainstEncodingJSON requires that walkArray accepts p exactly
// when encoding/json decodes it into []json.RawMessage, with the same
// elements.
func checkArrayAgainstEncodingJSON(t testing.TB, p []byte) {
	t.Helper()
	got, isArray, err := walkArray(p)
	var want []json.RawMessage
	if !json.Valid(p) || p[firstNonSpace(p)] != '[' || json.Unmarshal(p, &want) != nil {
		require.False(t, isArray && err == nil, "walkArray accepts %.80q, which encoding/json refuses as an array", p)
		return
	}
	require.True(t, isArray, "walkArray: %.80q is not an array", p)
	require.NoError(t, err, "walkArray(%.80q)", p)
	require.Len(t, got, len(want), "elements of %.80q", p)
	for i := range got {
		assert.Equal(t, string(want[i]), string(got[i]), "element %d of %.80q", i, p)
	}
}

func TestArrayMatchesEncodingJSON(t *testing.T) {
	for _, c := range tableCases {
		checkArrayAgainstEncodingJSON(t, []byte(c))
		checkArrayAgainstEncodingJSON(t, []byte("["+c+"]"))
		checkArrayAgainstEncodingJSON(t, []byte("[1,"+c+",[]]"))
	}
	seed := []byte(` [ {"index":0,"item_id":null,"status":"accepted"} , [1,"x\"y"] , -2.5e3 , true ] `)
	alphabet := []byte("{}[],:\"\\0123456789-.etn \t\x00\xff")
	testutil.EachMutation(seed, alphabet, func(p []byte) { checkArrayAgainstEncodingJSON(t, p) })
}

func TestArrayErrors(t *testing.T) {
	_, isArray, err := walkArray([]byte(`[1,2] x`))
	require.True(t, isArray)
	assert.EqualError(t, err, "invalid JSON at byte 6: want end of input after the array")
	_, _, err = walkArray([]byte(`[1 2]`))
	assert.EqualError(t, err, "invalid JSON at byte 3: want ',' or ']'")
	s := New([]byte(` {"a":[]}`))
	assert.False(t, s.Array(), "an object is not an array")
	assert.NoError(t, s.Err(), "not an array is the caller's to word, not a syntax error")
}

func FuzzArray(f *testing.F) {
	for _, c := range tableCases {
		f.Add([]byte("[" + c + "]"))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkArrayAgainstEncodingJSON(t, p)
	})
}
