package faultfs

// The types of the package's API, on every platform (see unsupported.go).

// Options for Start.
type Options struct {
	Debug bool // the server logs every FUSE request to stderr
}

// Stats count what a mount saw since it was mounted.
type Stats struct {
	Ops          int64 // changes: writes, truncates, fsyncs, creates, renames, unlinks
	Writes       int64
	WriteBytes   int64
	Fsyncs       int64 // of files, including failed ones
	DirFsyncs    int64
	FailedWrites int64 // EIO from FailWrite
	FailedFsyncs int64 // EIO from FailFsync
	NoSpace      int64 // writes refused with ENOSPC
	Refused      int64 // changes refused after the power went off
	PowerOff     bool
}

// CrashReport says what a crash kept of the unsynced pages.
type CrashReport struct {
	Torn         bool
	DroppedPages int // unsynced pages lost
	KeptPages    int // unsynced pages a torn crash wrote anyway
}
