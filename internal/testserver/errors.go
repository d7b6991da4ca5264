package testserver

import "errors"

// ErrUnknownUser is returned by Login when the tenant or the user does not
// exist, or the user is not authorized for the tenant.
var ErrUnknownUser = errors.New("testserver: unknown tenant or user")
