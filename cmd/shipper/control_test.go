package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/spectrastrike/shipper/outbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startControl serves a fresh outbox on a control socket, as the daemon does,
// and returns the store behind it and a client.
func startControl(t *testing.T) (*outbox.Outbox, *daemonClient, string) {
	t.Helper()
	// Unix socket paths are short (108 bytes): keep the directory short too.
	dir, err := os.MkdirTemp("", "shc")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "outbox.db")
	ob, err := outbox.Open(path, outbox.Options{})
	require.NoError(t, err)
	sock := path + ".sock"
	ln, err := listenControl(context.Background(), sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: controlHandler(&directStore{ob: ob})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		ob.Close()
	})
	dc, ok := dialDaemon(context.Background(), sock)
	require.True(t, ok, "dialDaemon: no answer from a serving socket")
	t.Cleanup(func() { dc.Close() })
	return ob, dc, sock
}

func TestControlSocketIsPrivate(t *testing.T) {
	_, _, sock := startControl(t)
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "socket mode")
	_, err = listenControl(context.Background(), sock)
	assert.ErrorIs(t, err, errDaemonRunning, "a second listener on a live socket")
}

func TestControlSocketRoundTrip(t *testing.T) {
	ob, dc, _ := startControl(t)
	ctx := context.Background()
	var lines []lineItem
	for i := range 600 { // more than one flush of the NDJSON stream
		lines = append(lines, lineItem{line: i + 1, payload: []byte(event(fmt.Sprintf("e-%04d", i), "m"))})
	}
	res, err := dc.storeLines(ctx, outbox.KindEvent, lines, capacity{})
	require.NoError(t, err, "enqueue through the socket")
	// Not require.Len: on failure it would print all 600 results.
	require.Equal(t, 600, len(res), "enqueue through the socket: results returned")
	require.Equal(t, lineResult{Line: 1, Key: "e-0000"}, res[0], "enqueue through the socket: first result")
	require.Equal(t, 600, ob.Stats().Records, "records in the daemon's outbox")

	n := 0
	err = dc.List(ctx, outbox.Filter{Kind: outbox.KindEvent}, func(r recordView) error {
		if want := fmt.Sprintf("e-%04d", n); r.Key != want || r.State != outbox.StatePending {
			return fmt.Errorf("record %d = %s %s, want %s pending", n, r.Key, r.State, want)
		}
		n++
		return nil
	})
	require.NoError(t, err, "List after %d records", n)
	require.Equal(t, 600, n, "List: records listed")
	n = 0
	err = dc.List(ctx, outbox.Filter{Limit: 7}, func(recordView) error { n++; return nil })
	assert.NoError(t, err, "List with Limit 7")
	assert.Equal(t, 7, n, "List with Limit 7: records listed")

	r, err := dc.Get(ctx, "e-0042")
	if assert.NoError(t, err, "Get") {
		assert.Equal(t, "e-0042", r.Key, "Get: %+v", r)
		assert.NotEmpty(t, r.Payload, "Get: %+v", r)
	}
	_, err = dc.Get(ctx, "nope")
	assert.ErrorIs(t, err, outbox.ErrNotFound, "Get of an unknown key through the socket")
	res, err = dc.storeLines(ctx, outbox.KindEvent, []lineItem{{line: 7, payload: []byte(event("e-0001", "other"))}}, capacity{})
	if assert.NoError(t, err, "conflicting enqueue through the socket") && assert.Len(t, res, 1, "conflicting enqueue through the socket") {
		assert.Equal(t, 7, res[0].Line, "conflicting enqueue through the socket: %+v", res[0])
		assert.Equal(t, "conflict", res[0].Code, "conflicting enqueue through the socket: %+v", res[0])
	}
	// A conflict among other lines refuses that line only.
	res, err = dc.storeLines(ctx, outbox.KindEvent, []lineItem{
		{line: 1, payload: []byte(event("e-0600", "m"))},
		{line: 2, payload: []byte(event("e-0002", "other"))},
		{line: 3, payload: []byte(event("e-0601", "m"))},
	}, capacity{})
	if assert.NoError(t, err, "a conflict among other lines") && assert.Len(t, res, 3, "a conflict among other lines") {
		assert.Equal(t, lineResult{Line: 1, Key: "e-0600"}, res[0])
		assert.Equal(t, "conflict", res[1].Code, "a conflict among other lines: %+v", res[1])
		assert.Equal(t, lineResult{Line: 3, Key: "e-0601"}, res[2])
	}
	require.Equal(t, 602, ob.Stats().Records, "records after a conflict among other lines")

	// Requeue of a pending record is refused but reported, and nothing moves.
	moved, err := dc.Requeue(ctx, requeueRequest{Keys: []string{"e-0001"}})
	assert.Empty(t, moved, "requeue of a pending record moved records")
	assert.ErrorIs(t, err, outbox.ErrInvalidState, "requeue of a pending record")
	s, err := dc.Stats(ctx)
	if assert.NoError(t, err, "Stats") {
		assert.Equal(t, 602, s.ByState[outbox.StatePending], "Stats: %+v", s)
		assert.Equal(t, 602, s.ByKindState[outbox.KindEvent][outbox.StatePending], "Stats: %+v", s)
	}
	rep, err := dc.Verify(ctx)
	if assert.NoError(t, err, "Verify") {
		assert.Empty(t, rep.Problems, "Verify: %+v", rep)
		assert.Equal(t, 602, rep.Records, "Verify: %+v", rep)
	}
	gone, err := dc.Purge(ctx, purgeRequest{State: outbox.StateDead, DryRun: true})
	assert.NoError(t, err, "Purge of no dead records")
	assert.Empty(t, gone, "Purge of no dead records")
}

func TestDialDaemonIgnoresStaleSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "shc")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "o.db.sock")
	ln, err := listenControl(context.Background(), sock)
	require.NoError(t, err)
	// A daemon killed with SIGKILL leaves its socket file behind: simulate it.
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	_, err = os.Stat(sock)
	require.NoError(t, err, "socket file should remain")
	_, ok := dialDaemon(context.Background(), sock)
	require.False(t, ok, "dialDaemon reports a daemon on a dead socket")
	ln, err = listenControl(context.Background(), sock)
	require.NoError(t, err, "a new daemon cannot replace a stale socket")
	ln.Close()
}
