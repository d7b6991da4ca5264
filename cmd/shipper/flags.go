package main

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// settingError is a wrong flag or environment setting: the verb exits 2 with
// one line naming the setting and what is wrong.
type settingError struct {
	Setting string // "--outbox", "SHIPPER_METRICS_ADDR", ...
	Problem string
}

func (e *settingError) Error() string { return e.Setting + ": " + e.Problem }

// cli is the small amount of shared plumbing every verb uses: its flag set, the
// environment fallbacks of its flags, and the verb name for messages.
type cli struct {
	name string
	fs   *flag.FlagSet
	env  Env
	// envOf maps a flag name to the environment variable it falls back to.
	envOf map[string]string
	usage func()
	// args are the positional arguments, wherever they stood among the flags.
	args []string
	// extraHelp paragraphs are printed after the flags (the VectorVue settings).
	extraHelp []string
}

// newCLI builds a verb's flag set. synopsis is the usage line after "shipper NAME",
// about a paragraph printed before the flags.
func newCLI(name, synopsis, about string, env Env) *cli {
	c := &cli{name: name, fs: flag.NewFlagSet("shipper "+name, flag.ContinueOnError), env: env, envOf: map[string]string{}}
	// parse reports a wrong flag in one line of its own; the full usage is
	// printed only when asked for (-h), on stdout.
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	c.usage = func() {
		w := env.Stdout
		c.fs.SetOutput(w)
		defer c.fs.SetOutput(io.Discard)
		fmt.Fprintf(w, "usage: shipper %s %s\n\n", name, synopsis)
		if about != "" {
			fmt.Fprintln(w, strings.TrimSpace(about))
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "flags:")
		c.fs.PrintDefaults()
		if len(c.envOf) > 0 {
			fmt.Fprintln(w, "\nenvironment (used when the flag is not given):")
			names := make([]string, 0, len(c.envOf))
			for f := range c.envOf {
				names = append(names, f)
			}
			sort.Strings(names)
			for _, f := range names {
				fmt.Fprintf(w, "  %-34s --%s\n", c.envOf[f], f)
			}
		}
		for _, h := range c.extraHelp {
			fmt.Fprintln(w)
			fmt.Fprintln(w, h)
		}
	}
	return c
}

// bindEnv records that flag falls back to the environment variable.
func (c *cli) bindEnv(flagName, envName string) { c.envOf[flagName] = envName }

// parse parses args and applies the environment fallbacks. It returns
// (code, false) when the verb must stop: -h (0) or a wrong flag (2).
func (c *cli) parse(args []string) (int, bool) {
	if err := c.parseInterspersed(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage()
			return exitOK, false
		}
		fmt.Fprintf(c.env.Stderr, "shipper %s: %v (see 'shipper %s -h')\n", c.name, err, c.name)
		return exitUsage, false
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	names := make([]string, 0, len(c.envOf))
	for f := range c.envOf {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		if set[f] {
			continue
		}
		v := c.env.Getenv(c.envOf[f])
		if v == "" {
			continue
		}
		if err := c.fs.Set(f, v); err != nil {
			return c.fail(&settingError{Setting: c.envOf[f], Problem: err.Error()}), false
		}
	}
	return exitOK, true
}

// parseInterspersed lets flags follow positional arguments
// ("requeue KEY --dry-run" must be a dry run, not a requeue of "--dry-run");
// everything after "--" is positional.
func (c *cli) parseInterspersed(args []string) error {
	c.args = nil
	for {
		if err := c.fs.Parse(args); err != nil {
			return err
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			return nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			c.args = append(c.args, rest...)
			return nil
		}
		c.args = append(c.args, rest[0])
		args = rest[1:]
	}
}

// setting names a flag for messages, with its environment variable when it has one.
func (c *cli) setting(flagName string) string {
	if e, ok := c.envOf[flagName]; ok {
		return "--" + flagName + " (" + e + ")"
	}
	return "--" + flagName
}

// fail prints err as one line and returns the exit code it deserves.
func (c *cli) fail(err error) int {
	fmt.Fprintf(c.env.Stderr, "shipper %s: %v\n", c.name, err)
	if isSettingError(err) {
		return exitUsage
	}
	return exitFailed
}

func (c *cli) usageErr(flagName, problem string) int {
	return c.fail(&settingError{Setting: c.setting(flagName), Problem: problem})
}

func (c *cli) infof(format string, a ...any) {
	fmt.Fprintf(c.env.Stderr, "shipper %s: "+format+"\n", append([]any{c.name}, a...)...)
}

func isSettingError(err error) bool {
	var se *settingError
	if errors.As(err, &se) {
		return true
	}
	return isVVConfigError(err)
}

// parseAge accepts a Go duration ("90m", "1h30m") or whole days ("7d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 90m, 36h, 7d)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 90m, 36h, 7d)", s)
	}
	return v, nil
}

// ageFlag is a flag.Value for parseAge durations.
type ageFlag struct{ d time.Duration }

func (a *ageFlag) String() string {
	if a == nil || a.d == 0 {
		return ""
	}
	return a.d.String()
}

func (a *ageFlag) Set(s string) error {
	d, err := parseAge(s)
	if err != nil {
		return err
	}
	a.d = d
	return nil
}

// readKeyFile reads a 32-byte AES-256 key: 64 hex characters, base64 of 32
// bytes, or exactly 32 raw bytes. The key itself never appears in an error.
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", errors.Unwrap(err))
	}
	return decodeKey(b)
}

func decodeKey(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	if len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("not a 32-byte key (want 64 hex characters, base64 of 32 bytes, or 32 raw bytes)")
}

// isTerminal reports whether w is a terminal (progress bars go only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// arg is the i-th positional argument, or "".
func (c *cli) arg(i int) string {
	if i < len(c.args) {
		return c.args[i]
	}
	return ""
}
