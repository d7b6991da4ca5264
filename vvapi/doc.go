// Package vvapi is the typed client of VectorVue's SpectraStrike ingest API,
// as the real server behaves (docs/vectorvue-api.md).
//
// One Client is safe for concurrent use and keeps one pooled http.Client.
// Every call:
//   - logs in lazily (username, password, tenant) when no Token was given, one
//     login shared by concurrent callers; a 401 on a login token triggers one
//     fresh login and one retry, a pre-provisioned Token is never replaced;
//   - refuses, before any I/O, payloads that are not one JSON object and
//     batches outside 1..MaxBatchSize (ErrInvalidPayload, ErrBatchSize);
//   - sends the caller's bytes as they are (a batch is the records joined
//     inside [ ]), HMAC-signed afresh on every attempt when a secret is set,
//     with a fresh UUID X-Request-ID per attempt and the same Idempotency-Key;
//   - retries what the retry policy (retry.go; the table is in
//     docs/architecture.md, "Retry policy") calls worth repeating (transport
//     errors, timeouts, 429, 502, 503, 504) up to MaxRetries times, waiting by
//     Backoff (capped, fully jittered, exponential, honouring Retry-After) and
//     stopping the moment the context is done; the SingleAttempt view makes
//     one attempt per call for callers that retry on their own (the delivery
//     worker), and ClassifyError gives them the same policy's verdict;
//   - returns every non-2xx answer as one *Error (status, code, the server's
//     message, request id, attempts), matched by errors.Is against the
//     sentinels of errors.go, and network failures as *TransportError;
//   - reads secrets given as files (PasswordFile, TokenFile,
//     SignatureSecretFile) and CAFile again before the next request after a
//     refusal they could fix (401, 403, an untrusted certificate), and on
//     Reload, so a rotated password or a re-issued CA needs no new client;
//   - logs endpoint, request id, tenant, outcome, HTTP status, attempt and
//     duration through the injected *slog.Logger, and never a password,
//     token, secret or signature (Secret redacts itself everywhere).
//
// ValidateEvent and ValidateFinding check a payload against the contract's
// field rules before it is stored, so a record the server would refuse is
// refused at enqueue with the field named.
package vvapi
