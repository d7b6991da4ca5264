package outbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// sealer encrypts payloads at rest with AES-256-GCM. Each record stores the id of
// the key that sealed it, so a record written under another key (or before
// encryption was turned on) is recognised rather than mis-decrypted. The record's
// idempotency key is the additional data: a sealed payload cannot be moved to
// another record unnoticed.
type sealer struct {
	id   string
	aead cipher.AEAD
}

// checkPlaintext is sealed into the meta bucket so Open can tell a wrong key at
// once, before any record is read.
const checkPlaintext = "shipper outbox key check v1"

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("encryption key must be 32 bytes (AES-256), got %d: %w", len(key), ErrWrongKey)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongKey, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongKey, err)
	}
	// The id is a hash of the key under a fixed label: it names the key without
	// revealing it.
	h := sha256.Sum256(append([]byte("shipper-outbox-key-id\x00"), key...))
	return &sealer{id: hex.EncodeToString(h[:8]), aead: aead}, nil
}

// KeyID is the id an outbox gives an encryption key (Options.EncryptionKey) in
// its messages and in Stats: it names the key without revealing it.
func KeyID(key []byte) (string, error) {
	s, err := newSealer(key)
	if err != nil {
		return "", err
	}
	return s.id, nil
}

func (s *sealer) seal(plain, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("outbox: crypto/rand failed: " + err.Error()) // crypto/rand never fails on Linux
	}
	return s.aead.Seal(nonce, nonce, plain, ad)
}

func (s *sealer) open(sealed, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns+s.aead.Overhead() {
		return nil, fmt.Errorf("sealed payload too short: %w", ErrCorrupt)
	}
	plain, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return nil, fmt.Errorf("payload does not authenticate under key %s: %w", s.id, ErrWrongKey)
	}
	return plain, nil
}

// plaintext returns st's payload in the clear, copied out of bbolt memory.
func (o *Outbox) plaintext(st *stored) ([]byte, error) {
	if st.keyID == "" {
		return append([]byte(nil), st.payload...), nil
	}
	if o.sealer == nil {
		return nil, fmt.Errorf("outbox: record %s is encrypted (key %s) and no key was given: %w", st.key, st.keyID, ErrWrongKey)
	}
	if st.keyID != o.sealer.id {
		return nil, fmt.Errorf("outbox: record %s is encrypted with key %s, not the given key %s: %w", st.key, st.keyID, o.sealer.id, ErrWrongKey)
	}
	p, err := o.sealer.open(st.payload, []byte(st.key))
	if err != nil {
		return nil, fmt.Errorf("outbox: record %s: %w", st.key, err)
	}
	return p, nil
}
