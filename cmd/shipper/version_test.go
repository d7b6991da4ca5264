package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWriteVersionNamesRevisionAndGo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/spectrastrike/shipper", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"},
			{Key: "vcs.revision", Value: "102a8853f0c1d2e3f4a5b6c7d8e9f00112233445"},
			{Key: "vcs.time", Value: "2026-12-01T14:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	var out bytes.Buffer
	writeVersion(&out, bi)
	assert.Equal(t, "shipper v0.3.0 (102a8853f0c1+dirty 2026-12-01T14:00:00Z) go1.26.8 linux/amd64\n", out.String())
}

func TestWriteVersionSaysWhenThereIsNoRevision(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/spectrastrike/shipper", Version: "(devel)"},
		Settings:  []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}},
	}
	var out bytes.Buffer
	writeVersion(&out, bi)
	assert.Equal(t, "shipper (devel) (no VCS information: built with -buildvcs=false?) go1.26.8 linux/amd64\n", out.String())
}

func TestVersionVerbAndFlag(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
		assert.Equal(t, exitOK, code, "%v: stderr %s", args, errb.String())
		assert.Regexp(t, `^shipper \S+ .*go1\.\d+`, out.String(), "%v", args)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"version", "extra"}, Env{Stdout: &out, Stderr: &errb})
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb.String(), `"extra"`)
}
