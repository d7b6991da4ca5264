package testserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func loginBody(user, pw, tenant string) []byte {
	m := map[string]string{"username": user, "password": pw}
	if tenant != "" {
		m["tenant_id"] = tenant
	}
	b, _ := json.Marshal(m)
	return b
}

func TestLoginAnswers(t *testing.T) {
	s := start(t, Options{PlainHTTP: true, Tenants: []Tenant{
		{ID: DefaultTenantID, Active: true, Users: map[string]string{"alice": "pw-a", "bob": "pw-b"}, Unauthorized: []string{"bob"}},
		{ID: SecondTenantID, Active: false, Users: map[string]string{"alice": "pw-a"}},
		{ID: "50000000-0000-0000-0000-000000000005", Active: true, Users: map[string]string{"carol": "pw-c"}},
	}})
	cases := []struct {
		name   string
		body   []byte
		status int
		detail string
	}{
		{"no tenant with several tenants", loginBody("alice", "pw-a", ""), 400, "tenant_id is required for multi-tenant login"},
		{"bad password", loginBody("alice", "nope", DefaultTenantID), 401, "Invalid credentials"},
		{"unknown user", loginBody("mallory", "pw-a", DefaultTenantID), 401, "Invalid credentials"},
		{"unknown tenant", loginBody("alice", "pw-a", "99999999-0000-0000-0000-000000000009"), 401, "Unknown tenant_id"},
		{"user listed unauthorized", loginBody("bob", "pw-b", DefaultTenantID), 403, "User is not authorized for tenant"},
		{"user of another tenant", loginBody("carol", "pw-c", DefaultTenantID), 403, "User is not authorized for tenant"},
		{"inactive tenant", loginBody("alice", "pw-a", SecondTenantID), 403, "Tenant is inactive"},
	}
	for _, c := range cases {
		a := do(t, s, "POST", LoginPath, "", c.body, nil)
		if a.status != c.status || a.json(t)["detail"] != c.detail {
			t.Errorf("%s: got %d %s, want %d %q", c.name, a.status, a.body, c.status, c.detail)
		}
	}
}

func TestLoginTokenClaimsAndSingleTenantLogin(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now, Tenants: []Tenant{
		{ID: DefaultTenantID, Active: true, Users: map[string]string{DefaultUsername: DefaultPassword}},
	}})
	// With one tenant the tenant_id may be omitted.
	a := do(t, s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, ""), nil)
	if a.status != 200 {
		t.Fatalf("single-tenant login: %d %s", a.status, a.body)
	}
	m := a.json(t)
	if m["token_type"] != "bearer" || m["expires_in"] != float64(43200) || m["tenant_id"] != DefaultTenantID || m["username"] != DefaultUsername {
		t.Errorf("login answer = %s", a.body)
	}
	parts := strings.Split(m["access_token"].(string), ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT")
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if string(hdr) != `{"alg":"HS256","typ":"JWT"}` {
		t.Errorf("header = %s", hdr)
	}
	want := `{"sub":"spectrastrike","tenant_id":"30000000-0000-0000-0000-000000000003","role":"operator","iat":1795928866,"exp":1795972066,"iss":"vectorvue-client-api"}`
	if string(payload) != want {
		t.Errorf("claims = %s\nwant     %s", payload, want)
	}
}

func TestRevokeLogins(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.RevokeLogins(true)
	a := do(t, s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID), nil)
	if a.status != 401 || a.json(t)["detail"] != "Invalid credentials" {
		t.Errorf("login while revoked: %d %s", a.status, a.body)
	}
	// Tokens already issued keep working: only logins are refused.
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("r-1", "x"), nil); a.status != 202 {
		t.Errorf("old token while logins revoked: %d %s", a.status, a.body)
	}
	s.RevokeLogins(false)
	login(t, s)
}

func TestTokenExpiry(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now})
	tok := login(t, s)
	post := func(tok string) answer { return do(t, s, "POST", IngestPrefix+"/events", tok, event("", "x"), nil) }
	clock.Advance(12*time.Hour - time.Second)
	if a := post(tok); a.status != 202 {
		t.Fatalf("token just before 12 h: %d %s", a.status, a.body)
	}
	clock.Advance(time.Second)
	if a := post(tok); a.status != 401 || a.json(t)["detail"] != "Token expired" {
		t.Errorf("token at 12 h: %d %s", a.status, a.body)
	}

	tok = login(t, s)
	s.ExpireTokens()
	if a := post(tok); a.status != 401 || a.json(t)["detail"] != "Token expired" {
		t.Errorf("after ExpireTokens: %d %s", a.status, a.body)
	}
	clock.Advance(time.Second)
	if a := post(login(t, s)); a.status != 202 {
		t.Errorf("fresh login after ExpireTokens: %d %s", a.status, a.body)
	}
	// Same second, same claims, same token: a new login makes it valid again.
	s.ExpireTokens()
	if a := post(login(t, s)); a.status != 202 {
		t.Errorf("re-login within the same second after ExpireTokens: %d %s", a.status, a.body)
	}
}

func TestBearerErrors(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now})
	now := clock.Now().Unix()
	cases := []struct {
		name, token string
		status      int
		detail      string
	}{
		{"missing", "", 401, "Missing bearer token"},
		{"garbage", "abc.def.ghi", 401, "Invalid JWT"},
		{"foreign key", New(Options{}).MintToken("u", DefaultTenantID, now, now+60), 401, "Invalid JWT"},
		{"expired", s.MintToken("u", DefaultTenantID, now-100, now-1), 401, "Token expired"},
		{"no tenant claim", s.MintToken("u", "", now, now+60), 401, "JWT is missing required tenant_id claim"},
	}
	for _, c := range cases {
		a := do(t, s, "POST", IngestPrefix+"/events", c.token, event("", "x"), nil)
		if a.status != c.status || a.json(t)["detail"] != c.detail {
			t.Errorf("%s: got %d %s, want %d %q", c.name, a.status, a.body, c.status, c.detail)
		}
	}
	// A valid token for a tenant the server does not know: 500, not 401.
	a := do(t, s, "POST", IngestPrefix+"/events", s.MintToken("u", "77777777-0000-0000-0000-000000000007", now, now+60), event("", "x"), nil)
	if a.status != 500 || a.header.Get("Content-Type") != "text/plain; charset=utf-8" || string(a.body) != "Internal Server Error" {
		t.Errorf("unknown tenant token: %d %q %q", a.status, a.header.Get("Content-Type"), a.body)
	}
}

func TestLoginHelperMintsUsableTokens(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok, err := s.Login(SecondTenantID, DefaultUsername)
	if err != nil {
		t.Fatal(err)
	}
	if a := do(t, s, "POST", IngestPrefix+"/events", tok, event("l-1", "x"), nil); a.status != 202 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if len(s.Events(SecondTenantID)) != 1 || len(s.Events(DefaultTenantID)) != 0 {
		t.Errorf("event stored under the wrong tenant")
	}
	if _, err := s.Login(SecondTenantID, "nobody"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Login of an unknown user: %v, want ErrUnknownUser", err)
	}
}
