package outbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "shipper")
	path := filepath.Join(dir, "outbox.db")
	o := openAt(t, path, Options{})
	if o.Path() != path {
		t.Fatalf("Path = %q", o.Path())
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", p, got, want)
		}
	}
}

// startHolder runs a child process that holds the outbox open, because bbolt's
// flock would not conflict the same way inside one process on every platform.
func startHolder(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=hold", envPath+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	startHolder(t, path)
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a held file = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "stop it") {
		t.Errorf("error %q should name the path and say what to do", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v despite a 200ms lock timeout", d)
	}
}

// makeOutbox writes a small closed outbox file with n records.
func makeOutbox(t *testing.T, path string, n int) {
	t.Helper()
	o, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := o.Enqueue(context.Background(), KindEvent, event("", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
}

func wantCorrupt(t *testing.T, path string, opts Options) {
	t.Helper()
	o, err := Open(path, opts)
	if err == nil {
		_ = o.Close()
		t.Fatalf("Open(%s) succeeded on a damaged file", path)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "never silently reset") {
		t.Errorf("error %q should name the path and say what to do", err)
	}
}

func TestOpenDamagedFiles(t *testing.T) {
	t.Run("foreign text file", func(t *testing.T) {
		data, err := os.ReadFile("testdata/not-an-outbox.txt")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		wantCorrupt(t, path, Options{})
		if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
			t.Error("Open changed a file it refused")
		}
	})
	t.Run("foreign bbolt file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "app.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("users"))
			if err != nil {
				return err
			}
			return b.Put([]byte("alice"), []byte("1"))
		}); err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
		wantCorrupt(t, path, Options{})
	})
	t.Run("truncated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		makeOutbox(t, path, 200)
		if err := os.Truncate(path, 3*4096); err != nil {
			t.Fatal(err)
		}
		wantCorrupt(t, path, Options{})
	})
	t.Run("meta pages overwritten", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		makeOutbox(t, path, 10)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		junk := bytes.Repeat([]byte{0xA5}, 64)
		for _, off := range []int64{16, 4096 + 16} {
			if _, err := f.WriteAt(junk, off); err != nil {
				t.Fatal(err)
			}
		}
		_ = f.Close()
		wantCorrupt(t, path, Options{})
	})
	t.Run("data pages zeroed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		makeOutbox(t, path, 200)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Zero every page after the two meta pages: each looks like neither a branch
		// nor a leaf to bbolt.
		for i := 2 * 4096; i < len(data); i++ {
			data[i] = 0
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		wantCorrupt(t, path, Options{})
		// The refusal leaves no lock behind: asking again gives the same answer,
		// not ErrLocked.
		wantCorrupt(t, path, Options{LockTimeout: 100 * time.Millisecond})
	})
	t.Run("empty file is a new outbox", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		openAt(t, path, Options{})
	})
}

func TestEncryptionAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	key := bytes.Repeat([]byte{7}, 32)
	secret := "TOP-SECRET-PLAINTEXT-MARKER-31337"
	o, err := Open(path, Options{EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	k, err := o.Enqueue(context.Background(), KindEvent, []byte(`{"message":"`+secret+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Dedupe compares plaintext even though the file holds ciphertext.
	if k2, err := o.EnqueueWithKey(context.Background(), KindEvent, k, []byte(`{"message":"`+secret+`"}`)); err != nil || k2 != k {
		t.Fatalf("re-enqueue = %q, %v", k2, err)
	}
	if _, err := o.Check(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("plaintext payload found in the file bytes")
	}
	if !bytes.Contains(raw, []byte(k)) {
		t.Fatal("sanity: the key (not secret) should be stored in the clear")
	}

	for name, opts := range map[string]Options{
		"no key":    {},
		"other key": {EncryptionKey: bytes.Repeat([]byte{8}, 32)},
		"short key": {EncryptionKey: []byte("short")},
	} {
		if o, err := Open(path, opts); !errors.Is(err, ErrWrongKey) {
			if err == nil {
				_ = o.Close()
			}
			t.Errorf("%s: Open = %v, want ErrWrongKey", name, err)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q should name the path", name, err)
		}
	}
	o = openAt(t, path, Options{EncryptionKey: key})
	r, err := o.Get(k)
	if err != nil || !strings.Contains(string(r.Payload), secret) {
		t.Fatalf("Get with the right key = %s, %v", r.Payload, err)
	}
	recs, err := o.Claim(KindEvent, 1, time.Minute)
	if err != nil || len(recs) != 1 || string(recs[0].Payload) != string(r.Payload) {
		t.Fatalf("Claim = %v, %v", recs, err)
	}
}

var _ = io.EOF
