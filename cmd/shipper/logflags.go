package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// logFlags choose the verb's slog handler on stderr.
type logFlags struct {
	level  string
	format string
}

func addLogFlags(c *cli, defLevel string) *logFlags {
	l := &logFlags{}
	c.fs.StringVar(&l.level, "log-level", defLevel, "debug|info|warn|error")
	c.bindEnv("log-level", "SHIPPER_LOG_LEVEL")
	c.fs.StringVar(&l.format, "log-format", "text", "text|json")
	c.bindEnv("log-format", "SHIPPER_LOG_FORMAT")
	return l
}

func (l *logFlags) logger(c *cli, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(l.level))); err != nil {
		return nil, &settingError{Setting: c.setting("log-level"), Problem: fmt.Sprintf("%q is not debug|info|warn|error", l.level)}
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, &settingError{Setting: c.setting("log-format"), Problem: fmt.Sprintf("%q is not text|json", l.format)}
}
