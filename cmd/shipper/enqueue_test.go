package main

import (
	"strings"
	"testing"
	"time"
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

func TestProgressBarOnlyForLongInputs(t *testing.T) {
	var out strings.Builder
	clock := time.Unix(1000, 0)
	p := newProgress(&out, 1000)
	p.start, p.now = clock, func() time.Time { return clock }
	p.bytes = 100
	p.update(10, 0)
	if out.Len() != 0 {
		t.Fatalf("a bar within the first 300ms: %q", out.String())
	}
	clock = clock.Add(time.Second)
	p.bytes = 500
	p.update(50, 2)
	if got := out.String(); !strings.HasPrefix(got, "\r[###############...............]  50%") || !strings.Contains(got, "50 stored, 2 refused") {
		t.Errorf("bar = %q", got)
	}
	p.done()
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("done must end the bar's line")
	}
}
