package main

import (
	"strings"
	"testing"
)

type readRecord struct {
	line    int
	payload string
}

func readAll(t *testing.T, in string) []readRecord {
	t.Helper()
	var got []readRecord
	if err := readRecords(strings.NewReader(in), func(line int, p []byte) error {
		got = append(got, readRecord{line, string(p)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReadRecordsJSONLinesKeepsLineNumbers(t *testing.T) {
	got := readAll(t, "{\"a\":1}\n\n  {\"b\":2}  \nnot json\n{\"c\":3}")
	want := []readRecord{{1, `{"a":1}`}, {3, `{"b":2}`}, {4, "not json"}, {5, `{"c":3}`}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestReadRecordsOnePrettyObject(t *testing.T) {
	got := readAll(t, "\n{\n  \"a\": 1,\n  \"b\": {\"c\": 2}\n}\n")
	if len(got) != 1 || got[0].line != 2 || !strings.Contains(got[0].payload, `"c": 2`) {
		t.Fatalf("got %v, want one record starting on line 2", got)
	}
}

func TestReadRecordsBrokenFirstLineThenLines(t *testing.T) {
	got := readAll(t, "{\"a\":\n{\"b\":2}\n")
	if len(got) != 2 || got[0].line != 1 || got[1].line != 2 || got[1].payload != `{"b":2}` {
		t.Fatalf("got %v, want the broken line 1 then line 2", got)
	}
}
