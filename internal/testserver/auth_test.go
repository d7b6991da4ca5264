package testserver

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		assert.Equal(t, c.status, a.status, "%s: %s", c.name, a.body)
		assert.Equal(t, c.detail, a.json(t)["detail"], "%s: %s", c.name, a.body)
	}
}

func TestLoginTokenClaimsAndSingleTenantLogin(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now, Tenants: []Tenant{
		{ID: DefaultTenantID, Active: true, Users: map[string]string{DefaultUsername: DefaultPassword}},
	}})
	// With one tenant the tenant_id may be omitted.
	a := do(t, s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, ""), nil)
	require.Equal(t, 200, a.status, "single-tenant login: %s", a.body)
	m := a.json(t)
	assert.Equal(t, "bearer", m["token_type"], "login answer %s", a.body)
	assert.Equal(t, float64(43200), m["expires_in"], "login answer %s", a.body)
	assert.Equal(t, DefaultTenantID, m["tenant_id"], "login answer %s", a.body)
	assert.Equal(t, DefaultUsername, m["username"], "login answer %s", a.body)
	parts := strings.Split(m["access_token"].(string), ".")
	require.Len(t, parts, 3, "token is not a JWT")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	assert.Equal(t, `{"alg":"HS256","typ":"JWT"}`, string(hdr), "JWT header")
	want := `{"sub":"spectrastrike","tenant_id":"30000000-0000-0000-0000-000000000003","role":"operator","iat":1795928866,"exp":1795972066,"iss":"vectorvue-client-api"}`
	assert.Equal(t, want, string(payload), "JWT claims")
}

func TestRevokeLogins(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok := login(t, s)
	s.RevokeLogins(true)
	a := do(t, s, "POST", LoginPath, "", loginBody(DefaultUsername, DefaultPassword, DefaultTenantID), nil)
	assert.Equal(t, 401, a.status, "login while revoked: %s", a.body)
	assert.Equal(t, "Invalid credentials", a.json(t)["detail"], "login while revoked: %s", a.body)
	// Tokens already issued keep working: only logins are refused.
	a = do(t, s, "POST", IngestPrefix+"/events", tok, event("r-1", "x"), nil)
	assert.Equal(t, 202, a.status, "old token while logins revoked: %s", a.body)
	s.RevokeLogins(false)
	login(t, s)
}

func TestTokenExpiry(t *testing.T) {
	clock := &fixedClock{t: time.Unix(1795928866, 0)}
	s := start(t, Options{PlainHTTP: true, Now: clock.Now})
	tok := login(t, s)
	post := func(tok string) answer { return do(t, s, "POST", IngestPrefix+"/events", tok, event("", "x"), nil) }
	clock.Advance(12*time.Hour - time.Second)
	a := post(tok)
	require.Equal(t, 202, a.status, "token just before 12 h: %s", a.body)
	clock.Advance(time.Second)
	a = post(tok)
	assert.Equal(t, 401, a.status, "token at 12 h: %s", a.body)
	assert.Equal(t, "Token expired", a.json(t)["detail"], "token at 12 h: %s", a.body)

	tok = login(t, s)
	s.ExpireTokens()
	a = post(tok)
	assert.Equal(t, 401, a.status, "after ExpireTokens: %s", a.body)
	assert.Equal(t, "Token expired", a.json(t)["detail"], "after ExpireTokens: %s", a.body)
	clock.Advance(time.Second)
	a = post(login(t, s))
	assert.Equal(t, 202, a.status, "fresh login after ExpireTokens: %s", a.body)
	// Same second, same claims, same token: a new login makes it valid again.
	s.ExpireTokens()
	a = post(login(t, s))
	assert.Equal(t, 202, a.status, "re-login within the same second after ExpireTokens: %s", a.body)
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
		assert.Equal(t, c.status, a.status, "%s: %s", c.name, a.body)
		assert.Equal(t, c.detail, a.json(t)["detail"], "%s: %s", c.name, a.body)
	}
	// A valid token for a tenant the server does not know: 500, not 401.
	a := do(t, s, "POST", IngestPrefix+"/events", s.MintToken("u", "77777777-0000-0000-0000-000000000007", now, now+60), event("", "x"), nil)
	assert.Equal(t, 500, a.status, "unknown tenant token: %s", a.body)
	assert.Equal(t, "text/plain; charset=utf-8", a.header.Get("Content-Type"), "unknown tenant token: Content-Type")
	assert.Equal(t, "Internal Server Error", string(a.body), "unknown tenant token: body")
}

func TestLoginHelperMintsUsableTokens(t *testing.T) {
	s := start(t, Options{PlainHTTP: true})
	tok, err := s.Login(SecondTenantID, DefaultUsername)
	require.NoError(t, err, "Login")
	a := do(t, s, "POST", IngestPrefix+"/events", tok, event("l-1", "x"), nil)
	require.Equal(t, 202, a.status, "%s", a.body)
	assert.Len(t, s.Events(SecondTenantID), 1, "events of the token's tenant")
	assert.Empty(t, s.Events(DefaultTenantID), "event stored under the wrong tenant")
	_, err = s.Login(SecondTenantID, "nobody")
	assert.ErrorIs(t, err, ErrUnknownUser, "Login of an unknown user")
}
