package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// checkOutboxPath refuses a directory where the outbox file belongs: opened as
// is, it would be reported as a corrupt outbox.
func checkOutboxPath(c *cli, path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return &settingError{Setting: c.setting("outbox"),
			Problem: fmt.Sprintf("%s is a directory; give the path of the outbox file, e.g. %s", path, filepath.Join(path, "outbox.db"))}
	}
	return nil
}
