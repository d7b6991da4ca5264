package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/spectrastrike/shipper/outbox"
)

// startControl serves a fresh outbox on a control socket, as the daemon does,
// and returns the store behind it and a client.
func startControl(t *testing.T) (*outbox.Outbox, *daemonClient, string) {
	t.Helper()
	// Unix socket paths are short (108 bytes): keep the directory short too.
	dir, err := os.MkdirTemp("", "shc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "outbox.db")
	ob, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock := path + ".sock"
	ln, err := listenControl(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: controlHandler(&directStore{ob: ob})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		ob.Close()
	})
	dc, ok := dialDaemon(context.Background(), sock)
	if !ok {
		t.Fatal("dialDaemon: no answer from a serving socket")
	}
	t.Cleanup(func() { dc.Close() })
	return ob, dc, sock
}

func TestControlSocketIsPrivate(t *testing.T) {
	_, _, sock := startControl(t)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}
	if _, err := listenControl(context.Background(), sock); !errors.Is(err, errDaemonRunning) {
		t.Errorf("a second listener on a live socket: %v, want errDaemonRunning", err)
	}
}

func TestControlSocketRoundTrip(t *testing.T) {
	ob, dc, _ := startControl(t)
	ctx := context.Background()
	var items []outbox.Item
	for i := range 600 { // more than one flush of the NDJSON stream
		items = append(items, outbox.Item{Kind: outbox.KindEvent, Payload: fmt.Appendf(nil, `{"event_id":"e-%04d","message":"m"}`, i)})
	}
	keys, err := dc.EnqueueAll(ctx, items)
	if err != nil || len(keys) != 600 || keys[0] != "e-0000" {
		t.Fatalf("EnqueueAll through the socket: %d keys, %v", len(keys), err)
	}
	if n := ob.Stats().Records; n != 600 {
		t.Fatalf("the daemon's outbox holds %d records, want 600", n)
	}

	n := 0
	err = dc.List(ctx, outbox.Filter{Kind: outbox.KindEvent}, func(r recordView) error {
		if want := fmt.Sprintf("e-%04d", n); r.Key != want || r.State != outbox.StatePending {
			return fmt.Errorf("record %d = %s %s, want %s pending", n, r.Key, r.State, want)
		}
		n++
		return nil
	})
	if err != nil || n != 600 {
		t.Fatalf("List: %d records, %v", n, err)
	}
	n = 0
	if err := dc.List(ctx, outbox.Filter{Limit: 7}, func(recordView) error { n++; return nil }); err != nil || n != 7 {
		t.Errorf("List with Limit 7: %d records, %v", n, err)
	}

	r, err := dc.Get(ctx, "e-0042")
	if err != nil || r.Key != "e-0042" || string(r.Payload) == "" {
		t.Errorf("Get: %+v, %v", r, err)
	}
	if _, err := dc.Get(ctx, "nope"); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("Get of an unknown key: %v, want ErrNotFound through the socket", err)
	}
	if _, err := dc.EnqueueAll(ctx, []outbox.Item{{Kind: outbox.KindEvent, Payload: []byte(`{"event_id":"e-0001","message":"other"}`)}}); !errors.Is(err, outbox.ErrConflict) {
		t.Errorf("conflicting enqueue: %v, want ErrConflict through the socket", err)
	}

	// Requeue of a pending record is refused but reported, and nothing moves.
	moved, err := dc.Requeue(ctx, requeueRequest{Keys: []string{"e-0001"}})
	if len(moved) != 0 || !errors.Is(err, outbox.ErrInvalidState) {
		t.Errorf("requeue of a pending record: %v, %v; want nothing moved and ErrInvalidState", moved, err)
	}
	s, err := dc.Stats(ctx)
	if err != nil || s.ByState[outbox.StatePending] != 600 || s.ByKindState[outbox.KindEvent][outbox.StatePending] != 600 {
		t.Errorf("Stats: %+v, %v", s, err)
	}
	rep, err := dc.Verify(ctx)
	if err != nil || len(rep.Problems) != 0 || rep.Records != 600 {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
	gone, err := dc.Purge(ctx, purgeRequest{State: outbox.StateDead, DryRun: true})
	if err != nil || len(gone) != 0 {
		t.Errorf("Purge of no dead records: %v, %v", gone, err)
	}
}

func TestDialDaemonIgnoresStaleSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "shc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "o.db.sock")
	ln, err := listenControl(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	// A daemon killed with SIGKILL leaves its socket file behind: simulate it.
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("socket file should remain: %v", err)
	}
	if _, ok := dialDaemon(context.Background(), sock); ok {
		t.Fatal("dialDaemon reports a daemon on a dead socket")
	}
	ln, err = listenControl(context.Background(), sock)
	if err != nil {
		t.Fatalf("a new daemon cannot replace a stale socket: %v", err)
	}
	ln.Close()
}
