package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// DefaultOutboxPath is used when neither --outbox nor SHIPPER_OUTBOX is set.
const DefaultOutboxPath = "shipper-outbox/outbox.db"

// outboxFlags are the outbox settings shared by every verb that opens one.
type outboxFlags struct {
	path       string
	keyFile    string
	maxRecords int
	maxBytes   int64
	retention  time.Duration
	prefill    string
	// linesChecked: the verb checks every record against the contract before
	// storing it (enqueue), so the outbox need not check it again.
	linesChecked bool
}

// addOutboxFlags declares --outbox and --encryption-key-file; withCapacity adds the
// limits that matter to a process that stores and delivers.
func addOutboxFlags(c *cli, withCapacity bool) *outboxFlags {
	o := &outboxFlags{}
	c.fs.StringVar(&o.path, "outbox", DefaultOutboxPath, "outbox file (created 0600 in a 0700 directory when missing)")
	c.bindEnv("outbox", "SHIPPER_OUTBOX")
	c.fs.StringVar(&o.keyFile, "encryption-key-file", "", "file holding a 32-byte AES-256-GCM key for payloads at rest (64 hex chars, base64, or raw)")
	c.bindEnv("encryption-key-file", "SHIPPER_ENCRYPTION_KEY_FILE")
	c.extraHelp = append(c.extraHelp, "The encryption key may also be given itself, in hex, in SHIPPER_ENCRYPTION_KEY.")
	if withCapacity {
		c.fs.IntVar(&o.maxRecords, "max-records", 0, "refuse enqueues beyond this many records not yet confirmed (0 = unlimited)")
		c.bindEnv("max-records", "SHIPPER_MAX_RECORDS")
		c.fs.Int64Var(&o.maxBytes, "max-bytes", 0, "refuse enqueues beyond this many payload bytes not yet confirmed (0 = unlimited)")
		c.bindEnv("max-bytes", "SHIPPER_MAX_BYTES")
		c.fs.DurationVar(&o.retention, "retention", time.Hour, "keep confirmed records this long before deleting them")
		c.bindEnv("retention", "SHIPPER_RETENTION")
		c.fs.StringVar(&o.prefill, "prefill", "auto", "write zeros up to 8 MiB ahead of the growing file so commits fsync faster: auto (on ext4 and XFS with room to spare), on, off")
		c.bindEnv("prefill", "SHIPPER_PREFILL")
	}
	return o
}

func (o *outboxFlags) socketPath() string { return o.path + ".sock" }

// options resolves the outbox options; a wrong setting is a *settingError.
func (o *outboxFlags) options(c *cli) (outbox.Options, error) {
	if o.path == "" {
		return outbox.Options{}, &settingError{Setting: c.setting("outbox"), Problem: "empty path"}
	}
	if o.maxRecords < 0 {
		return outbox.Options{}, &settingError{Setting: c.setting("max-records"), Problem: "must be 0 or more"}
	}
	if o.maxBytes < 0 {
		return outbox.Options{}, &settingError{Setting: c.setting("max-bytes"), Problem: "must be 0 or more"}
	}
	opts := outbox.Options{
		MaxRecords: o.maxRecords,
		MaxBytes:   o.maxBytes,
		Retention:  o.retention,
		Validate:   validateRecord,
		Logger:     outboxLogger(c),
	}
	if o.linesChecked {
		opts.Validate = nil
	}
	if o.retention < 0 {
		return outbox.Options{}, &settingError{Setting: c.setting("retention"), Problem: "must be 0 or more"}
	}
	switch o.prefill {
	case "auto", "":
	case "on":
		opts.Prefill = outbox.PrefillOn
	case "off":
		opts.Prefill = outbox.PrefillOff
	default:
		return outbox.Options{}, &settingError{Setting: c.setting("prefill"), Problem: fmt.Sprintf("%q is not auto, on or off", o.prefill)}
	}
	if o.keyFile != "" {
		k, err := readKeyFile(o.keyFile)
		if err != nil {
			return outbox.Options{}, &settingError{Setting: c.setting("encryption-key-file"), Problem: err.Error()}
		}
		opts.EncryptionKey = k
	} else if hexKey := c.env.Getenv("SHIPPER_ENCRYPTION_KEY"); hexKey != "" {
		k, err := decodeKey([]byte(hexKey))
		if err != nil {
			return outbox.Options{}, &settingError{Setting: "SHIPPER_ENCRYPTION_KEY", Problem: err.Error()}
		}
		opts.EncryptionKey = k
	}
	return opts, nil
}

// outboxLogger is where a verb that opens the outbox file itself says what the
// outbox changed or found on its own (a mode made private, a damaged record
// made dead), as the daemon's log does; the daemon gives its own logger.
func outboxLogger(c *cli) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// validateRecord is the contract's field check, run before anything is stored.
func validateRecord(kind outbox.Kind, payload []byte) error {
	switch kind {
	case outbox.KindEvent:
		return vvapi.ValidateEvent(payload)
	case outbox.KindFinding:
		return vvapi.ValidateFinding(payload)
	}
	return fmt.Errorf("unknown kind %q", kind)
}
