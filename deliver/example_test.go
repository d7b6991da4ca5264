package deliver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/spectrastrike/shipper/outbox"
	"github.com/spectrastrike/shipper/vvapi"
)

// Example is the embedding example of README.md, run against the built-in
// test server: store an event durably, then deliver it until VectorVue's
// ingest status confirms it.
func Example() {
	srv, err := testserver.Start(testserver.Options{}) // HTTPS with its own CA, 240 requests/min
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "shipper-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	caFile := filepath.Join(dir, "ca.pem")
	if err := srv.WriteCA(caFile); err != nil {
		panic(err)
	}
	if err := embed(context.Background(), filepath.Join(dir, "outbox.db"), srv.URL(), caFile,
		vvapi.Secret(testserver.DefaultPassword), testserver.DefaultTenantID); err != nil {
		panic(err)
	}
	fmt.Println(len(srv.Events(testserver.DefaultTenantID)), "event stored at VectorVue")
	// Output:
	// event 0193a0c4-0000-7000-8000-000000000001: confirmed
	// 1 event stored at VectorVue
}

func embed(ctx context.Context, path, baseURL, caFile string, pw vvapi.Secret, tenant string) error {
	// README.md "Embedding" starts here.
	ob, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		return err
	}
	defer ob.Close()

	// Returns once the record is fsynced; the key is the event_id (or a new UUIDv7).
	key, err := ob.Enqueue(ctx, outbox.KindEvent, []byte(`{"event_id":"0193a0c4-0000-7000-8000-000000000001",
		"source_system":"sensor-7","event_type":"process_start","occurred_at":"2026-11-29T06:00:00Z",
		"severity":"low","asset_ref":"host-01","message":"powershell.exe started by winword.exe"}`))
	if err != nil {
		return err
	}

	client, err := vvapi.New(vvapi.Config{BaseURL: baseURL, CAFile: caFile,
		Username: "spectrastrike", Password: pw, TenantID: tenant})
	if err != nil {
		return err
	}
	w, err := deliver.New(ob, client, deliver.Options{})
	if err != nil {
		return err
	}
	// A daemon calls w.Run(ctx), which delivers until ctx is cancelled; Drain
	// returns once nothing is pending or waiting for confirmation. A refused
	// password or certificate pauses delivery rather than ending it, so a
	// caller that cannot wait bounds Drain and says why it stopped.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := w.Drain(dctx); err != nil {
		if p, paused := w.Pause(); paused {
			return fmt.Errorf("delivery paused (%s: %s): %w", p.Cause, p.Reason, err)
		}
		return err
	}
	rec, err := ob.Get(key)
	if err != nil {
		return err
	}
	fmt.Printf("event %s: %s\n", key, rec.State)
	// README.md "Embedding" ends here.
	return nil
}
