package testserver_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spectrastrike/shipper/internal/testserver"
)

func ExampleServer_Inject() {
	srv, err := testserver.Start(testserver.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	tok, _ := srv.Login(testserver.DefaultTenantID, testserver.DefaultUsername)
	srv.Inject(testserver.Fault{Route: "events", Count: 1, Status: 503})

	client := srv.Client() // trusts the generated CA
	for i := 0; i < 2; i++ {
		req := strings.NewReader(`{"event_id":"ex-1","source_system":"s","event_type":"t","occurred_at":"2026-02-22T10:00:00Z","severity":"low","asset_ref":"a","message":"m"}`)
		r, _ := newRequest(srv.URL()+testserver.IngestPrefix+"/events", tok, req)
		resp, err := client.Do(r)
		if err != nil {
			panic(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println(len(srv.Events(testserver.DefaultTenantID)), "stored")
	// Output:
	// 503
	// 202
	// 1 stored
}

func newRequest(url, token string, body io.Reader) (*http.Request, error) {
	r, err := http.NewRequest("POST", url, body)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+token)
	return r, nil
}
