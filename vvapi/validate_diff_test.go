package vvapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/spectrastrike/shipper/internal/testserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The client-side rules against an independent implementation of the
// server's (internal/testserver, written from the same contract): every case
// of the validation tables goes in one batch, and each item must be accepted
// by the server exactly when ValidateEvent/ValidateFinding accept it.
func TestValidateAgreesWithTestserver(t *testing.T) {
	srv, err := testserver.Start(testserver.Options{PlainHTTP: true})
	require.NoError(t, err, "testserver.Start")
	t.Cleanup(func() { srv.Close() })
	c, err := New(Config{BaseURL: srv.URL(), AllowHTTP: true, Username: testserver.DefaultUsername,
		Password: testserver.DefaultPassword, TenantID: testserver.DefaultTenantID, MaxBatchSize: MaxBatchLimit})
	require.NoError(t, err, "New")
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
		require.NoError(t, err, "%s batch", kind.name)
		require.Len(t, br.Results, len(items), "%s: results for %d items", kind.name, len(items))
		for i, tc := range kind.cases {
			ours := kind.validate(items[i])
			assert.Equal(t, ours == nil, br.Results[i].Status == "accepted", "%s %q: server %s (%s), client says %v",
				kind.name, tc.name, br.Results[i].Status, br.Results[i].ErrorMessage, ours)
		}
	}
}
