package testserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

type claims struct {
	Sub      string `json:"sub"`
	TenantID string `json:"tenant_id,omitempty"`
	Role     string `json:"role"`
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
	Iss      string `json:"iss"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// mintLocked issues an HS256 token like the real server's; s.mu must be held.
func (s *Server) mintLocked(tenantID, user string) string {
	now := s.now().Unix()
	c := claims{Sub: user, TenantID: tenantID, Role: "operator", Iat: now,
		Exp: now + int64(s.opts.TokenTTL.Seconds()), Iss: "vectorvue-client-api"}
	tok := s.signJWT(marshal(c))
	s.state.issued[tok] = struct{}{}
	// The same claims in the same second give the same token: a fresh login
	// makes it valid again.
	delete(s.state.expired, tok)
	return tok
}

func (s *Server) signJWT(payload []byte) string {
	signing := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, s.jwtKey)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Login mints a token for a user of a tenant as a successful login would,
// without a request (for tests that need a token directly).
func (s *Server) Login(tenantID, username string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.state.tenants[tenantID]
	if t == nil || t.unauthorized[username] {
		return "", fmt.Errorf("%w: %s/%s", ErrUnknownUser, tenantID, username)
	}
	if _, ok := t.Users[username]; !ok {
		return "", fmt.Errorf("%w: %s/%s", ErrUnknownUser, tenantID, username)
	}
	return s.mintLocked(tenantID, username), nil
}

// MintToken signs arbitrary claims with the server's JWT key, so tests can
// build tokens the server would never issue (unknown tenant, no tenant_id,
// already expired). Fields: sub, tenant_id (omitted when empty), iat, exp.
func (s *Server) MintToken(sub, tenantID string, iat, exp int64) string {
	return s.signJWT(marshal(claims{Sub: sub, TenantID: tenantID, Role: "operator", Iat: iat, Exp: exp, Iss: "vectorvue-client-api"}))
}

// ExpireTokens makes every token issued so far answer 401 Token expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok := range s.state.issued {
		s.state.expired[tok] = struct{}{}
	}
	clear(s.state.issued)
}

// RevokeLogins makes every login answer 401 Invalid credentials (true) or restores them.
func (s *Server) RevokeLogins(revoked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.revoked = revoked
}

type loginRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	TenantID *string `json:"tenant_id"`
}

func (s *Server) handleLogin(body []byte) *response {
	var req loginRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return jsonResponse(http.StatusUnprocessableEntity,
			marshal(map[string]any{"detail": []map[string]any{{"type": "json_invalid", "loc": []any{"body"}, "msg": "JSON decode error"}}}))
	}
	var missing []map[string]any
	if req.Username == nil {
		missing = append(missing, map[string]any{"type": "missing", "loc": []any{"body", "username"}, "msg": msgFieldRequired})
	}
	if req.Password == nil {
		missing = append(missing, map[string]any{"type": "missing", "loc": []any{"body", "password"}, "msg": msgFieldRequired})
	}
	if missing != nil {
		return jsonResponse(http.StatusUnprocessableEntity, marshal(map[string]any{"detail": missing}))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.state
	var t *tenantState
	if req.TenantID == nil || *req.TenantID == "" {
		if len(st.tenants) != 1 {
			return detail(http.StatusBadRequest, "tenant_id is required for multi-tenant login")
		}
		for _, only := range st.tenants {
			t = only
		}
	} else if t = st.tenants[*req.TenantID]; t == nil {
		return detail(http.StatusUnauthorized, "Unknown tenant_id")
	}
	pw, known := st.passwords[*req.Username]
	if own, ok := t.Users[*req.Username]; ok {
		pw, known = own, true
	}
	if st.revoked || !known || !hmac.Equal([]byte(pw), []byte(*req.Password)) {
		return detail(http.StatusUnauthorized, "Invalid credentials")
	}
	if _, member := t.Users[*req.Username]; !member || t.unauthorized[*req.Username] {
		return detail(http.StatusForbidden, "User is not authorized for tenant")
	}
	if !t.Active {
		return detail(http.StatusForbidden, "Tenant is inactive")
	}
	tok := s.mintLocked(t.ID, *req.Username)
	return jsonResponse(http.StatusOK, marshal(struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		TenantID    string `json:"tenant_id"`
		Username    string `json:"username"`
	}{tok, "bearer", int64(s.opts.TokenTTL.Seconds()), t.ID, *req.Username}))
}

// authenticate checks the bearer token and returns its tenant, or the answer
// the real server gives.
func (s *Server) authenticate(r *http.Request) (string, *response) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return "", detail(http.StatusUnauthorized, "Missing bearer token")
	}
	tok = strings.TrimSpace(tok)
	c, ok := s.verifyJWT(tok)
	if !ok {
		return "", detail(http.StatusUnauthorized, "Invalid JWT")
	}
	nowNano := s.now().UnixNano()
	s.mu.Lock()
	_, expired := s.state.expired[tok]
	s.mu.Unlock()
	if expired || float64(c.Exp) <= float64(nowNano)/1e9 {
		return "", detail(http.StatusUnauthorized, "Token expired")
	}
	if c.TenantID == "" {
		return "", detail(http.StatusUnauthorized, "JWT is missing required tenant_id claim")
	}
	s.mu.Lock()
	_, known := s.state.tenants[c.TenantID]
	s.mu.Unlock()
	if !known {
		// The real server fails on a foreign key here rather than answering 401.
		return "", internalError()
	}
	return c.TenantID, nil
}

func (s *Server) verifyJWT(tok string) (claims, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return claims{}, false
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return claims{}, false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" {
		return claims{}, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return claims{}, false
	}
	m := hmac.New(sha256.New, s.jwtKey)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return claims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, false
	}
	var c claims
	var raw map[string]any
	if json.Unmarshal(payload, &c) != nil || json.Unmarshal(payload, &raw) != nil {
		return claims{}, false
	}
	if _, ok := raw["exp"]; !ok {
		return claims{}, false
	}
	return c, true
}
