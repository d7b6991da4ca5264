package outbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"time"
)

// Kind is what a record carries.
type Kind string

const (
	KindEvent   Kind = "event"
	KindFinding Kind = "finding"
)

// State is where a record is in its life (docs/architecture.md).
type State string

const (
	StatePending   State = "pending"
	StateSending   State = "sending"
	StateSubmitted State = "submitted"
	StateConfirmed State = "confirmed"
	StateDead      State = "dead"
)

// Record is one stored event or finding.
type Record struct {
	Key           string          // idempotency key; equals the payload's event_id/finding_id
	Kind          Kind            //
	Payload       json.RawMessage // exact bytes sent on the wire (key injected as event_id/finding_id)
	State         State           //
	Attempts      int             // sends so far since enqueue or requeue
	NextAttemptAt time.Time       // pending: not claimable before this
	LeaseUntil    time.Time       // sending: lease deadline
	RequestID     string          // submitted: server request_id
	ItemIndex     int             // submitted: index in that request's batch (0 for single)
	SubmittedAt   time.Time       //
	LastError     string          // last transient error, or the dead reason
	Redrives      int             // times re-sent because status never confirmed
	CreatedAt     time.Time       //
	UpdatedAt     time.Time       //
	// Damage is empty for an intact record. Otherwise the stored record failed
	// its checksum and this says how: Payload is nil, the other fields are as
	// read, and the record is never sent (it is made dead, LastError "corrupt: …").
	Damage string
}

// Kinds and states are stored as one byte each. The codes are part of the file
// format: never renumber them.
const (
	kindCodeEvent   byte = 1
	kindCodeFinding byte = 2
	numKindCodes         = 3
)

const (
	stateCodePending   byte = 1
	stateCodeSending   byte = 2
	stateCodeSubmitted byte = 3
	stateCodeConfirmed byte = 4
	stateCodeDead      byte = 5
	numStateCodes           = 6
)

var allKinds = []Kind{KindEvent, KindFinding}
var allStates = []State{StatePending, StateSending, StateSubmitted, StateConfirmed, StateDead}

func kindCode(k Kind) (byte, bool) {
	switch k {
	case KindEvent:
		return kindCodeEvent, true
	case KindFinding:
		return kindCodeFinding, true
	}
	return 0, false
}

func kindOf(c byte) Kind {
	switch c {
	case kindCodeEvent:
		return KindEvent
	case kindCodeFinding:
		return KindFinding
	}
	return ""
}

func stateCode(s State) (byte, bool) {
	switch s {
	case StatePending:
		return stateCodePending, true
	case StateSending:
		return stateCodeSending, true
	case StateSubmitted:
		return stateCodeSubmitted, true
	case StateConfirmed:
		return stateCodeConfirmed, true
	case StateDead:
		return stateCodeDead, true
	}
	return 0, false
}

func stateOf(c byte) State {
	switch c {
	case stateCodePending:
		return StatePending
	case stateCodeSending:
		return StateSending
	case stateCodeSubmitted:
		return StateSubmitted
	case stateCodeConfirmed:
		return StateConfirmed
	case stateCodeDead:
		return StateDead
	}
	return ""
}

// idField is the payload member that carries the key for a kind.
func idField(k Kind) string {
	if k == KindFinding {
		return "finding_id"
	}
	return "event_id"
}

// stored is a record as kept on disk: the public fields plus its record id (see
// ridOf), whether it is fresh, the payload length before encryption (for capacity
// and stats without decrypting), and the id of the key that sealed the payload.
type stored struct {
	rid      uint64 // record id: enqueue sequence << 8 | kind code
	kind     byte
	state    byte
	fresh    bool // pending since enqueue, never claimed or moved: in no index (see Claim)
	corrupt  bool // quarantined: failed its checksum once; payload kept as found, never sent
	attempts int
	redrives int
	item     int
	next     int64 // unix nanoseconds; 0 = zero time
	lease    int64
	subAt    int64
	created  int64
	updated  int64
	plainLen int
	key      string
	reqID    string
	lastErr  string
	keyID    string
	payload  []byte // sealed when keyID != ""; aliases bbolt memory after decode
}

// recordFormat is the first byte of every record: format 2 ends with a CRC32C
// (see recordCRC). Format 1, without it, is read only by the upgrade at Open.
const (
	recordFormat   byte = 2
	recordFormatV1 byte = 1
	crcLen              = 4
)

const (
	flagFresh   byte = 1 // pending since enqueue, never moved: in no index (see Claim)
	flagCorrupt byte = 2 // failed its checksum and was made dead: never sent or requeued
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordCRC is the checksum a record ends with: CRC32C over its bytes before the
// checksum, then its record id (8 bytes big-endian), so a record whose bytes
// moved to another id fails too. bbolt has no page checksums. The body's CRC is
// computed apart (bodyCRC) so an enqueue can do it before its commit, which then
// only adds the id.
func recordCRC(body uint32, rid uint64) uint32 {
	// crc32.Update over the id's 8 bytes, byte by byte: its slice escapes
	// (through the CPU-specific implementation), an allocation per record read
	// or written, and 8 bytes gain nothing from the fast path.
	crc := ^body
	for shift := 56; shift >= 0; shift -= 8 {
		crc = castagnoli[byte(crc)^byte(rid>>shift)] ^ crc>>8
	}
	return ^crc
}

func bodyCRC(body []byte) uint32 { return crc32.Checksum(body, castagnoli) }

// sealCRC fills the last crcLen bytes of enc (reserved by the encoder) with the
// checksum of the rest under record id rid; body is bodyCRC of the rest.
func sealCRC(enc []byte, body uint32, rid uint64) {
	binary.BigEndian.PutUint32(enc[len(enc)-crcLen:], recordCRC(body, rid))
}

// ridOf makes a record id: big-endian it sorts by enqueue sequence, and the low
// byte names the kind, whose records bucket holds the record.
func ridOf(seq uint64, kind byte) uint64 { return seq<<8 | uint64(kind) }

func ridKind(rid uint64) byte { return byte(rid) }

// isFresh reads the fresh flag of an encoded record without decoding it: the
// record is fresh if it also has no state entry (overlay.go). A damaged record
// may look fresh: Claim's checksum check catches it.
func isFresh(v []byte) bool {
	return len(v) > 3 && v[0] == recordFormat && v[2] == stateCodePending && v[3]&flagFresh != 0
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// encode returns the record's format-2 encoding, checksum included.
func (s *stored) encode() []byte {
	b := make([]byte, 0, s.headerCap()+len(s.payload)+crcLen)
	b = append(s.appendHeader(b), s.payload...)
	b = append(b, 0, 0, 0, 0)
	sealCRC(b, bodyCRC(b[:len(b)-crcLen]), s.rid)
	return b
}

// headerCap bounds the size of the encoding before the payload.
func (s *stored) headerCap() int {
	return 4 + 10*binary.MaxVarintLen64 + len(s.key) + len(s.reqID) + len(s.lastErr) + len(s.keyID)
}

// appendProgress appends what a record's delivery moves, as the record's header
// and its state entry (overlay.go) both hold it: attempts, redrives, the item
// index and the times due, leased and submitted.
func (s *stored) appendProgress(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(s.attempts))
	b = binary.AppendUvarint(b, uint64(s.redrives))
	b = binary.AppendUvarint(b, uint64(s.item))
	b = binary.AppendVarint(b, s.next)
	b = binary.AppendVarint(b, s.lease)
	return binary.AppendVarint(b, s.subAt)
}

// appendHeader appends the encoding of everything but the payload, which follows it.
func (s *stored) appendHeader(b []byte) []byte {
	var flags byte
	if s.fresh {
		flags |= flagFresh
	}
	if s.corrupt {
		flags |= flagCorrupt
	}
	b = append(b, recordFormat, s.kind, s.state, flags)
	b = s.appendProgress(b)
	b = binary.AppendVarint(b, s.created)
	b = binary.AppendVarint(b, s.updated)
	b = binary.AppendUvarint(b, uint64(s.plainLen))
	for _, str := range [...]string{s.key, s.reqID, s.lastErr, s.keyID} {
		b = binary.AppendUvarint(b, uint64(len(str)))
		b = append(b, str...)
	}
	return b
}

// decodeStored parses v, a format-2 record. The payload aliases v: copy it
// before the transaction ends. A record whose checksum fails returns a
// *damageError and, in s, what could be read of it (see damagedView).
func decodeStored(rid uint64, v []byte) (stored, error) {
	if len(v) < 4+crcLen || v[0] != recordFormat {
		return stored{rid: rid}, &damageError{rid: rid, reason: "unknown record format"}
	}
	body := v[:len(v)-crcLen]
	want := binary.BigEndian.Uint32(v[len(v)-crcLen:])
	s, err := parseBody(rid, body)
	if got := recordCRC(bodyCRC(body), rid); got != want {
		return s, &damageError{rid: rid, key: s.key, reason: fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got)}
	}
	if err != nil {
		return s, &damageError{rid: rid, key: s.key, reason: err.Error()}
	}
	return s, nil
}

// decodeV1 parses a format-1 record (no checksum), for the upgrade only.
func decodeV1(rid uint64, v []byte) (stored, error) {
	if len(v) < 4 || v[0] != recordFormatV1 {
		return stored{rid: rid}, fmt.Errorf("record %d: not format 1", rid)
	}
	return parseBody(rid, v)
}

// parseBody parses the fields after the format byte; what parsed before an
// error stays in s.
func parseBody(rid uint64, v []byte) (stored, error) {
	s := stored{rid: rid}
	s.kind, s.state, s.fresh, s.corrupt = v[1], v[2], v[3]&flagFresh != 0, v[3]&flagCorrupt != 0
	if kindOf(s.kind) == "" || stateOf(s.state) == "" || s.kind != ridKind(rid) {
		return s, fmt.Errorf("record %d: bad kind %d or state %d", rid, s.kind, s.state)
	}
	if s.fresh && s.state != stateCodePending {
		return s, fmt.Errorf("record %d: fresh but %s", rid, stateOf(s.state))
	}
	d := varintReader{p: v[4:], ok: true}
	s.attempts, s.redrives, s.item = int(d.uvarint()), int(d.uvarint()), int(d.uvarint())
	s.next, s.lease, s.subAt, s.created, s.updated = d.varint(), d.varint(), d.varint(), d.varint(), d.varint()
	s.plainLen = int(d.uvarint())
	s.key, s.reqID, s.lastErr, s.keyID = d.str(), d.str(), d.str(), d.str()
	if !d.ok {
		return s, fmt.Errorf("record %d: truncated", rid)
	}
	s.payload = d.p
	return s, nil
}

// public converts s to a Record carrying the given plaintext payload.
func (s *stored) public(plain []byte) Record {
	return Record{
		Key:           s.key,
		Kind:          kindOf(s.kind),
		Payload:       json.RawMessage(plain),
		State:         stateOf(s.state),
		Attempts:      s.attempts,
		NextAttemptAt: fromNanos(s.next),
		LeaseUntil:    fromNanos(s.lease),
		RequestID:     s.reqID,
		ItemIndex:     s.item,
		SubmittedAt:   fromNanos(s.subAt),
		LastError:     s.lastErr,
		Redrives:      s.redrives,
		CreatedAt:     fromNanos(s.created),
		UpdatedAt:     fromNanos(s.updated),
	}
}

// u64 is the one encoding of a number on disk: 8 bytes big-endian, so that
// byte order is numeric order. It is the key of a record under its id (ridOf),
// the value of a key index entry and a kind's watermark. (wtx.u64 is the same
// in memory that lasts until the commit.)
func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n) }
