package vvapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
)

// The client-side rules against an independent implementation of the
// server's (internal/testserver, written from the same contract): every case
// of the validation tables goes in one batch, and each item must be accepted
// by the server exactly when ValidateEvent/ValidateFinding accept it.
func TestValidateAgreesWithTestserver(t *testing.T) {
	srv, err := testserver.Start(testserver.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := New(Config{BaseURL: srv.URL(), AllowHTTP: true, Username: testserver.DefaultUsername,
		Password: testserver.DefaultPassword, TenantID: testserver.DefaultTenantID, MaxBatchSize: MaxBatchLimit})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, kind := range []struct {
		name     string
		base     map[string]any
		cases    []validateCase
		validate func([]byte) error
		send     func(context.Context, []json.RawMessage) (*BatchResult, error)
	}{
		{"events", eventBase, eventCases, ValidateEvent, c.SendEventsBatch},
		{"findings", findingBase, findingCases, ValidateFinding, c.SendFindingsBatch},
	} {
		items := make([]json.RawMessage, len(kind.cases))
		for i, tc := range kind.cases {
			items[i] = build(t, kind.base, tc.set)
		}
		br, err := kind.send(ctx, items)
		if err != nil {
			t.Fatalf("%s batch: %v", kind.name, err)
		}
		if len(br.Results) != len(items) {
			t.Fatalf("%s: %d results for %d items", kind.name, len(br.Results), len(items))
		}
		for i, tc := range kind.cases {
			ours := kind.validate(items[i])
			if server := br.Results[i].Status == "accepted"; server != (ours == nil) {
				t.Errorf("%s %q: server %s (%s), client says %v", kind.name, tc.name, br.Results[i].Status,
					br.Results[i].ErrorMessage, ours)
			}
		}
	}
}
