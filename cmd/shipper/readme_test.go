package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Go snippets of README.md are the marked regions of runnable Example
// functions, so a snippet cannot stop compiling or working unnoticed: make test
// runs the examples, and this test fails when README.md and a region differ.
func TestReadmeSnippetsAreExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	require.NotEmpty(t, snippets, "README.md has no Go snippet")

	regions := map[string]string{}
	for _, f := range []string{"../../deliver/example_test.go", "../../outbox/example_test.go"} {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for name, body := range readmeRegions(string(src)) {
			regions[f+" "+name] = body
		}
	}
	require.Len(t, regions, 2, "marked README regions in the example files")

	used := map[string]bool{}
	for i, s := range snippets {
		found := ""
		for name, body := range regions {
			if body == s[1] {
				found = name
			}
		}
		if assert.NotEmpty(t, found, "README.md Go snippet %d is not the marked region of an Example:\n%s", i+1, s[1]) {
			used[found] = true
		}
	}
	for name := range regions {
		assert.True(t, used[name], "region %s is not in README.md", name)
	}
}

// readmeRegions returns the lines between `// README.md "NAME" starts here.` and
// `// README.md "NAME" ends here.`, without their common indentation.
func readmeRegions(src string) map[string]string {
	out := map[string]string{}
	re := regexp.MustCompile(`(?s)// README\.md "([^"]+)" starts here\.\n(.*?)\n[ \t]*// README\.md "([^"]+)" ends here\.`)
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		lines := strings.Split(m[2], "\n")
		indent := -1
		for _, l := range lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			if n := len(l) - len(strings.TrimLeft(l, "\t")); indent < 0 || n < indent {
				indent = n
			}
		}
		for i, l := range lines {
			if len(l) >= indent {
				lines[i] = l[indent:]
			}
		}
		out[m[1]] = strings.Join(lines, "\n") + "\n"
	}
	return out
}

// The README's Python snippet, run as written by python3 against the ingest
// API on an outbox at the path it names: it stores its record and prints the
// key; run again (the same request with the same source, as after a lost
// answer), it prints the same key as stored already and stores nothing twice. .ci/run installs
// python3; outside CI a machine without it skips the test and says so.
func TestReadmePythonSnippetStoresThroughTheSocket(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 not found (.ci/run installs it)")
		}
		t.Skip("python3 not found: the README's Python snippet is not run")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	snippets := regexp.MustCompile("(?s)```python\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	require.Len(t, snippets, 1, "README.md's Python snippets")

	path, ob := serveControl(t, outbox.Options{})
	dir := t.TempDir()
	// The snippet names shipper-outbox/outbox.db.sock, relative to where it runs.
	require.NoError(t, os.Symlink(filepath.Dir(path), filepath.Join(dir, "shipper-outbox")))
	run := func() string {
		cmd := exec.Command(py, "-c", snippets[0][1])
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "python3 running the snippet:\n%s", out)
		return string(out)
	}

	first := run()
	require.Regexp(t, `^stored \S+\n$`, first)
	key := strings.Fields(first)[1]
	rec, err := ob.Get(key)
	require.NoError(t, err, "the key printed is stored")
	assert.Equal(t, outbox.KindEvent, rec.Kind)
	assert.Contains(t, string(rec.Payload), `"event_id":"`+key+`"`, "the key is the record's id")
	assert.Contains(t, string(rec.Payload), "powershell.exe spawned by winword.exe")

	assert.Equal(t, "already stored "+key+"\n", run(), "sent again with its source: the same key, stored already")
	assert.Equal(t, 1, ob.Stats().Records, "records stored after sending twice")
}
