package outbox_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spectrastrike/shipper/outbox"
	bolt "go.etcd.io/bbolt"
)

// An application that keeps its own state in bbolt shares the outbox file and
// enqueues in the same transaction as its own write, so the record exists
// exactly when the write does (README.md "Embedding").
func ExampleOutbox_EnqueueTx() {
	dir, err := os.MkdirTemp("", "outbox-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{})
	if err != nil {
		panic(err)
	}
	defer ob.Close()
	id, result := []byte("scan-42"), []byte(`{"hosts":12}`)
	finding := []byte(`{"finding_id":"scan-42-smb","title":"SMB signing disabled","description":"12 hosts accept unsigned SMB",
		"severity":"medium","first_seen":"2026-11-29T06:00:00Z","asset_ref":"subnet-10"}`)

	// README.md "EnqueueTx" starts here.
	err = ob.Update(func(tx *bolt.Tx) error {
		scans, err := tx.CreateBucketIfNotExists([]byte("scans")) // the application's own bucket
		if err != nil {
			return err
		}
		if err := scans.Put(id, result); err != nil {
			return err
		}
		_, err = ob.EnqueueTx(tx, outbox.Item{Kind: outbox.KindFinding, Payload: finding})
		return err
	})
	// README.md "EnqueueTx" ends here.
	if err != nil {
		panic(err)
	}
	rec, err := ob.Get("scan-42-smb")
	if err != nil {
		panic(err)
	}
	fmt.Println(rec.Key, rec.Kind, rec.State)
	// Output: scan-42-smb finding pending
}
