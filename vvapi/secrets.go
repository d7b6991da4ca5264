package vvapi

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
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
	if next.hc != cur.hc {
		// Requests in flight finish on the old pool; nothing new goes there.
		cur.hc.CloseIdleConnections()
	}
	return changed, nil
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
// CA files could fix: then the next attempt re-reads them first.
func refusalFixableByFiles(status int, err error) bool {
	if err != nil {
		return isTLSVerifyError(err)
	}
	return slices.Contains([]int{http.StatusUnauthorized, http.StatusForbidden}, status)
}
