package main

import (
	"encoding/json"
	"time"

	"github.com/spectrastrike/shipper/deliver"
	"github.com/spectrastrike/shipper/outbox"
)

// recordView is a record as the admin verbs show it and the control socket carries it.
type recordView struct {
	Key           string          `json:"key"`
	Kind          outbox.Kind     `json:"kind"`
	State         outbox.State    `json:"state"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitzero"`
	LeaseUntil    time.Time       `json:"lease_until,omitzero"`
	RequestID     string          `json:"request_id,omitempty"`
	ItemIndex     int             `json:"item_index"`
	SubmittedAt   time.Time       `json:"submitted_at,omitzero"`
	LastError     string          `json:"last_error,omitempty"`
	Redrives      int             `json:"redrives"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	Damage        string          `json:"damage,omitempty"` // the record failed its checksum: never sent, no payload
}

func viewOf(r outbox.Record) recordView {
	return recordView{
		Key: r.Key, Kind: r.Kind, State: r.State, Attempts: r.Attempts,
		NextAttemptAt: r.NextAttemptAt, LeaseUntil: r.LeaseUntil, RequestID: r.RequestID,
		ItemIndex: r.ItemIndex, SubmittedAt: r.SubmittedAt, LastError: r.LastError,
		Redrives: r.Redrives, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Payload: r.Payload, Damage: r.Damage,
	}
}

// statsView is outbox.Stats for JSON, plus what the daemon's worker counted.
type statsView struct {
	Path              string                               `json:"path"`
	Records           int                                  `json:"records"`
	ByState           map[outbox.State]int                 `json:"by_state"`
	ByKindState       map[outbox.Kind]map[outbox.State]int `json:"by_kind_state"`
	PayloadBytes      int64                                `json:"payload_bytes"`
	FileBytes         int64                                `json:"file_bytes"`
	OldestPending     time.Time                            `json:"oldest_pending,omitzero"`
	OldestUnconfirmed time.Time                            `json:"oldest_unconfirmed,omitzero"`
	DiskFreeBytes     int64                                `json:"disk_free_bytes,omitempty"`
	DiskReserveBytes  int64                                `json:"disk_reserve_bytes,omitempty"` // 0: no disk check
	DiskFull          bool                                 `json:"disk_full"`
	KeyID             *string                              `json:"key_id"`           // "": payloads in plaintext; nil: a daemon too old to say
	Worker            *workerView                          `json:"worker,omitempty"` // only from a running daemon
}

type workerView struct {
	Sent      int64            `json:"sent"`
	Submitted int64            `json:"submitted"`
	Replayed  int64            `json:"replayed"`
	Confirmed int64            `json:"confirmed"`
	Redrives  int64            `json:"redrives"`
	Dead      map[string]int64 `json:"dead_by_reason,omitempty"`
	Retries   map[string]int64 `json:"retries_by_reason,omitempty"`
	Paused    bool             `json:"paused"`
}

func workerViewOf(c deliver.Counters) *workerView {
	return &workerView{Sent: c.Sent, Submitted: c.Submitted, Replayed: c.Replayed, Confirmed: c.Confirmed, Redrives: c.Redrives,
		Dead: c.Dead, Retries: c.Retries, Paused: c.Paused}
}

func statsViewOf(path string, s outbox.Stats) statsView {
	return statsView{Path: path, Records: s.Records, ByState: s.ByState, ByKindState: s.ByKindState,
		PayloadBytes: s.PayloadBytes, FileBytes: s.FileBytes, OldestPending: s.OldestPending,
		OldestUnconfirmed: s.OldestUnconfirmed, DiskFreeBytes: s.DiskFreeBytes,
		DiskReserveBytes: s.DiskReserveBytes, DiskFull: s.DiskFull, KeyID: &s.KeyID}
}
