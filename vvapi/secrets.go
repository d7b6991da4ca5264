package vvapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// secrets are what a client may read again while it lives: the password, the
// token and the signature secret (from their files, when given as files) and
// the CA bundle with the HTTP client built on it. A Client holds one *secrets
// and swaps it whole, so a request never mixes an old token with a new CA.
type secrets struct {
	password, token, signature Secret
	caPEM                      []byte       // the CA file's bytes; nil without CAFile
	hc                         *http.Client // built on caPEM, or Config.HTTPClient
}

// rereads reports whether any secret or the CA comes from a file.
func (s *settings) rereads() bool {
	return s.PasswordFile != "" || s.TokenFile != "" || s.SignatureSecretFile != "" || s.CAFile != ""
}

// loadSecrets reads the secret files and the CA file. prev (nil at New) lends
// its HTTP client when the CA bundle is unchanged, so live connections stay
// pooled. A file that cannot be read, is empty or is not PEM is a *ConfigError
// naming the field; its content never appears in one.
func (s *settings) loadSecrets(prev *secrets) (*secrets, error) {
	sec := &secrets{password: s.Password, token: s.Token, signature: s.SignatureSecret}
	for _, f := range []struct {
		field, path string
		dst         *Secret
	}{
		{"PasswordFile", s.PasswordFile, &sec.password},
		{"TokenFile", s.TokenFile, &sec.token},
		{"SignatureSecretFile", s.SignatureSecretFile, &sec.signature},
	} {
		if f.path == "" {
			continue
		}
		v, err := readSecretFile(f.field, f.path)
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	if strings.ContainsAny(string(sec.token), " \t\r\n") {
		field := "Token"
		if s.TokenFile != "" {
			field = "TokenFile"
		}
		return nil, &ConfigError{field, "contains whitespace (a stray newline from a token file?)"}
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, &ConfigError{"CAFile", fmt.Sprintf("cannot read %s: %v", s.CAFile, unwrapPathError(err))}
		}
		sec.caPEM = pem
	}
	if prev != nil && bytes.Equal(prev.caPEM, sec.caPEM) {
		sec.hc = prev.hc
		return sec, nil
	}
	hc, err := s.httpClient(sec.caPEM)
	if err != nil {
		return nil, err
	}
	sec.hc = hc
	return sec, nil
}

// redact hides secrets in a server's words, which can echo what it was sent:
// FastAPI's 422 lists a body's fields with their input, and the login's body
// holds the password. It hides the client's current secrets, those a request
// was built with (a reload may have come since) and the token an attempt sent,
// each as sent and as JSON would escape it (by Go, or by Python with or without
// ensure_ascii).
func redact(msg string, cur, sent *secrets, token Secret) string {
	vs := []Secret{token}
	for _, s := range []*secrets{cur, sent} {
		if s != nil {
			vs = append(vs, s.password, s.token, s.signature)
		}
	}
	for _, v := range vs {
		if v == "" {
			continue
		}
		for _, form := range secretForms(string(v)) {
			msg = strings.ReplaceAll(msg, form, "[redacted]")
		}
	}
	return msg
}

// secretForms is v as it may appear in a server's text: raw, and inside a
// JSON string as Go (with or without its HTML escapes) or Python (with or
// without ensure_ascii) writes it; bytes that are not UTF-8 as U+FFFD, which
// is what encoding/json sends for them.
func secretForms(v string) []string {
	forms := []string{v}
	add := func(f string) {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	v = strings.ToValidUTF8(v, "\uFFFD")
	add(v)
	add(jsonEscaped(v, true))
	escaped := jsonEscaped(v, false)
	add(escaped)
	add(strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(escaped)) // Python leaves them
	add(asciiEscaped(escaped))
	return forms
}

// jsonEscaped is v inside a JSON string, as encoding/json writes it.
func jsonEscaped(v string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(v) // a string always encodes
	quoted := strings.TrimSuffix(b.String(), "\n")
	return quoted[1 : len(quoted)-1]
}

// asciiEscaped writes the non-ASCII characters of a JSON string's content as
// \uXXXX escapes, as Python's json does by default.
func asciiEscaped(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&b, "\\u%04x", r)
		}
	}
	return b.String()
}

// readSecretFile reads a secret, dropping the trailing newline editors add.
func readSecretFile(field, path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &ConfigError{field, fmt.Sprintf("cannot read %s: %v", path, unwrapPathError(err))}
	}
	v := strings.TrimRight(string(b), "\r\n \t")
	if v == "" {
		return "", &ConfigError{field, path + " is empty"}
	}
	return Secret(v), nil
}

// changedFields names the fields whose content differs between a and b.
func changedFields(a, b *secrets) []string {
	var changed []string
	add := func(differs bool, field string) {
		if differs {
			changed = append(changed, field)
		}
	}
	// Only a file can change, so each change is named by its file's field.
	add(a.password != b.password, "PasswordFile")
	add(a.token != b.token, "TokenFile")
	add(a.signature != b.signature, "SignatureSecretFile")
	add(!bytes.Equal(a.caPEM, b.caPEM), "CAFile")
	return changed
}

// Reload reads the secret files (PasswordFile, TokenFile, SignatureSecretFile)
// and CAFile again and, when they all read well, uses them from the next
// request on; a new CA bundle gets a new connection pool. It returns the
// fields whose content changed (none when nothing did). On an error (a
// *ConfigError naming the file) the client keeps what it had.
//
// The client also reloads by itself before each request that follows a
// failure the files could fix (401, 403, an untrusted certificate), so a fixed
// password file is used at the next login attempt without a Reload.
func (c *Client) Reload() ([]string, error) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	cur := c.sec.Load()
	next, err := c.s.loadSecrets(cur)
	if err != nil {
		return nil, err
	}
	changed := changedFields(cur, next)
	if len(changed) == 0 {
		return nil, nil
	}
	c.sec.Store(next)
	c.changes.Add(1)
	if next.hc != cur.hc {
		// Requests in flight finish on the old pool; nothing new goes there.
		cur.hc.CloseIdleConnections()
	}
	return changed, nil
}

// Changes counts the reloads (Reload, and those the client makes after a
// refusal) that found the secret or CA files changed: a caller that saw a
// refusal tells by it whether the files changed since, whoever read them.
func (c *Client) Changes() uint64 { return c.changes.Load() }

// reloadIfRefused reads the files again when the last attempt was refused in
// a way they could fix (reloadAfterFailure).
func (c *Client) reloadIfRefused() {
	if c.s.rereads() && c.refused.Load() {
		c.reloadAfterFailure()
	}
}

// reloadAfterFailure is Reload for a request that follows a refused one: what
// changed is logged, and a file that cannot be read is logged and the previous
// value kept (a rotation may be half done; the request says whether it works).
func (c *Client) reloadAfterFailure() {
	changed, err := c.Reload()
	switch {
	case err != nil:
		c.log.Warn("cannot read the secret and CA files again after a refusal; keeping the previous ones", "error", err.Error())
	case len(changed) > 0:
		c.log.Info("read the secret and CA files again after a refusal", "changed", strings.Join(changed, ","))
	}
}

// refusalFixableByFiles reports whether a failed attempt is one the secret or
// CA files could fix: then the next attempt re-reads them first. Any refusal
// of the login but a 429 is (ClassifyError: the setup's fault).
func refusalFixableByFiles(status int, err error, login bool) bool {
	if err != nil {
		return isTLSVerifyError(err)
	}
	if login && status >= 400 && status < 500 && status != http.StatusTooManyRequests {
		return true
	}
	return slices.Contains([]int{http.StatusUnauthorized, http.StatusForbidden}, status)
}
