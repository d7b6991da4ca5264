package main

// The daemon's control socket: HTTP+JSON over a Unix socket beside the outbox
// file (mode 0600), so the admin verbs work while the daemon holds the file lock.
//
//	GET  /v1/ping                 {"pid","outbox"}
//	GET  /v1/records/{key}        one record
//	GET  /v1/records?state=&kind=&older_than=&error=&limit=   NDJSON, one record a line, then {"_end":true}
//	GET  /v1/stats                statsView
//	POST /v1/requeue              requeueRequest → {"keys":[…]}
//	POST /v1/purge                purgeRequest → {"keys":[…]}
//	POST /v1/verify               outbox.CheckReport
//	POST /v1/enqueue?kind=        JSON Lines → one {"line","key"} or {"line","error","code"} a line (ingest_http.go)
//
// Errors are {"error": "...", "code": "..."}; the code maps back to the outbox
// sentinel so the verbs treat both paths alike.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spectrastrike/shipper/outbox"
)

// maxControlBody bounds what the control socket reads from one request.
const maxControlBody = 256 << 20

type keysBody struct {
	Keys []string `json:"keys"`
	// Error reports keys that were skipped while the others moved (requeue).
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

type streamLine struct {
	recordView
	End   bool   `json:"_end,omitempty"`
	Error string `json:"_error,omitempty"`
	Code  string `json:"_code,omitempty"`
}

// sentinels maps error codes on the socket to outbox sentinels.
var sentinels = []struct {
	code string
	err  error
}{
	{"not_found", outbox.ErrNotFound},
	{"conflict", outbox.ErrConflict},
	{"invalid_payload", outbox.ErrInvalidPayload},
	{"too_large", outbox.ErrTooLarge},
	{"full", outbox.ErrFull},
	{"invalid_state", outbox.ErrInvalidState},
	{"closed", outbox.ErrClosed},
	{"corrupt", outbox.ErrCorrupt},
}

func codeOf(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return ""
}

// remoteError is an error the daemon reported; it matches its outbox sentinel.
type remoteError struct {
	msg  string
	code string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	for _, s := range sentinels {
		if s.code == e.code && s.err == target {
			return true
		}
	}
	return false
}

// controlHandler serves the control API over st.
func controlHandler(st store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		s, _ := st.Stats(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{"pid": os.Getpid(), "outbox": s.Path})
	})
	mux.HandleFunc("GET /v1/records/{key}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := st.Get(r.Context(), r.PathValue("key"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	mux.HandleFunc("GET /v1/records", listHandler(st))
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Stats(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("POST /v1/requeue", func(w http.ResponseWriter, r *http.Request) {
		var req requeueRequest
		if !readJSON(w, r, &req) {
			return
		}
		keys, err := st.Requeue(r.Context(), req)
		kb := keysBody{Keys: keys}
		if err != nil {
			kb.Error, kb.Code = err.Error(), codeOf(err)
		}
		writeJSON(w, http.StatusOK, kb)
	})
	mux.HandleFunc("POST /v1/purge", func(w http.ResponseWriter, r *http.Request) {
		var req purgeRequest
		if !readJSON(w, r, &req) {
			return
		}
		keys, err := st.Purge(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, keysBody{Keys: keys})
	})
	mux.HandleFunc("POST /v1/verify", func(w http.ResponseWriter, r *http.Request) {
		rep, err := st.Verify(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
	mux.HandleFunc("POST /v1/enqueue", ingestHandler(st))
	return mux
}

// listHandler streams the records a filter selects, one JSON line each, and a
// last line that says the listing ended or why it stopped.
func listHandler(st store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := filterFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		flusher, _ := w.(http.Flusher)
		n := 0
		err = st.List(r.Context(), f, func(rec recordView) error {
			if err := enc.Encode(streamLine{recordView: rec}); err != nil {
				return err
			}
			// Flush now and then so a long listing streams instead of buffering.
			if n++; n%256 == 0 {
				if err := bw.Flush(); err != nil {
					return err
				}
				if flusher != nil {
					flusher.Flush()
				}
			}
			return nil
		})
		if err != nil {
			_ = enc.Encode(streamLine{Error: err.Error(), Code: codeOf(err)})
		} else {
			_ = enc.Encode(streamLine{End: true})
		}
		_ = bw.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := codeOf(err)
	status := http.StatusInternalServerError
	switch code {
	case "not_found":
		status = http.StatusNotFound
	case "conflict", "invalid_state":
		status = http.StatusConflict
	case "invalid_payload", "too_large":
		status = http.StatusUnprocessableEntity
	case "full":
		status = http.StatusInsufficientStorage
	}
	writeJSON(w, status, errorBody{Error: err.Error(), Code: code})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxControlBody))
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "bad request body: " + err.Error()})
		return false
	}
	return true
}

func filterQuery(f outbox.Filter) url.Values {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.Kind != "" {
		q.Set("kind", string(f.Kind))
	}
	if f.OlderThan > 0 {
		q.Set("older_than", f.OlderThan.String())
	}
	if f.ErrorContains != "" {
		q.Set("error", f.ErrorContains)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	return q
}

func filterFromQuery(q url.Values) (outbox.Filter, error) {
	f := outbox.Filter{
		State:         outbox.State(q.Get("state")),
		Kind:          outbox.Kind(q.Get("kind")),
		ErrorContains: q.Get("error"),
		After:         q.Get("after"),
	}
	if s := q.Get("older_than"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return f, fmt.Errorf("older_than: %w", err)
		}
		f.OlderThan = d
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return f, fmt.Errorf("limit: %w", err)
		}
		f.Limit = n
	}
	return f, nil
}

// daemonClient is a store reached through a running daemon's control socket.
type daemonClient struct {
	sock string
	hc   *http.Client
}

func newDaemonClient(sock string) *daemonClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 10 * time.Second,
	}
	return &daemonClient{sock: sock, hc: &http.Client{Transport: tr}}
}

// dialDaemon returns a client when a daemon answers on sock. A socket file left
// by a daemon that died answers nothing and is ignored.
func dialDaemon(ctx context.Context, sock string) (*daemonClient, bool) {
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, false
	}
	dc := newDaemonClient(sock)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := dc.do(ctx, http.MethodGet, "/v1/ping", nil, nil); err != nil {
		dc.Close()
		return nil, false
	}
	return dc, true
}

func (d *daemonClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://shipper"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon socket %s: %w", d.sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeRemoteError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxControlBody)).Decode(out); err != nil {
		return fmt.Errorf("daemon socket %s: bad answer: %w", d.sock, err)
	}
	return nil
}

func decodeRemoteError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		return &remoteError{msg: eb.Error, code: eb.Code}
	}
	return &remoteError{msg: fmt.Sprintf("daemon answered %s: %s", resp.Status, bytes.TrimSpace(b))}
}

func (d *daemonClient) Get(ctx context.Context, key string) (recordView, error) {
	var rv recordView
	err := d.do(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(key), nil, &rv)
	return rv, err
}

func (d *daemonClient) List(ctx context.Context, f outbox.Filter, fn func(recordView) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://shipper/v1/records?"+filterQuery(f).Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon socket %s: %w", d.sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeRemoteError(resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var line streamLine
		if err := dec.Decode(&line); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("daemon socket %s: listing cut short: %w", d.sock, err)
		}
		switch {
		case line.End:
			return nil
		case line.Error != "":
			return &remoteError{msg: line.Error, code: line.Code}
		}
		if err := fn(line.recordView); err != nil {
			return err
		}
	}
}

func (d *daemonClient) Stats(ctx context.Context) (statsView, error) {
	var s statsView
	err := d.do(ctx, http.MethodGet, "/v1/stats", nil, &s)
	return s, err
}

func (d *daemonClient) Requeue(ctx context.Context, req requeueRequest) ([]string, error) {
	var kb keysBody
	if err := d.do(ctx, http.MethodPost, "/v1/requeue", req, &kb); err != nil {
		return nil, err
	}
	if kb.Error != "" {
		return kb.Keys, &remoteError{msg: kb.Error, code: kb.Code}
	}
	return kb.Keys, nil
}

func (d *daemonClient) Purge(ctx context.Context, req purgeRequest) ([]string, error) {
	var kb keysBody
	err := d.do(ctx, http.MethodPost, "/v1/purge", req, &kb)
	return kb.Keys, err
}

func (d *daemonClient) Verify(ctx context.Context) (outbox.CheckReport, error) {
	var rep outbox.CheckReport
	err := d.do(ctx, http.MethodPost, "/v1/verify", struct{}{}, &rep)
	return rep, err
}

func (d *daemonClient) Close() error {
	d.hc.CloseIdleConnections()
	return nil
}

// listenControl listens on the control socket, mode 0600. A socket file left
// by a daemon that died is removed first; one that answers is refused.
func listenControl(ctx context.Context, sock string) (net.Listener, error) {
	// sockaddr_un holds 108 bytes with the terminating NUL.
	if len(sock) > 107 {
		return nil, fmt.Errorf("control socket path %s is %d bytes, more than a Unix socket allows (107); use a shorter outbox path", sock, len(sock))
	}
	if dc, ok := dialDaemon(ctx, sock); ok {
		dc.Close()
		return nil, fmt.Errorf("%w (socket %s)", errDaemonRunning, sock)
	}
	if fi, err := os.Lstat(sock); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket path %s exists and is not a socket", sock)
		}
		if err := os.Remove(sock); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The outbox directory is 0700 already; the chmod makes the socket itself
	// private too, whatever the umask.
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}
