package deliver

import "errors"

// ErrRunning is returned by Run or Drain when the worker is already running (one Run or
// Drain at a time per Worker).
var ErrRunning = errors.New("deliver: worker is already running")
