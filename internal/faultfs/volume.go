//go:build linux

package faultfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PageSize is the unit of tearing and of space allocation.
const PageSize = 4096

// volume is the state of one mount: the namespace and data reads see, what the
// backing directory (the disk) holds, and the faults armed. One mutex guards it;
// the FUSE layer calls one method per request.
type volume struct {
	mu      sync.Mutex
	backing string // durable names and their data
	orphans string // durable data of files whose name is not durable (yet, or any more)

	dirMode uint32            // of the directory: 0700 after every mount
	names   map[string]uint64 // the directory as reads see it
	durable map[string]uint64 // the directory as the disk holds it; one backing file each
	files   map[uint64]*file
	nextIno uint64

	faults faults
	stats  Stats
	offCh  chan struct{} // closed when the power goes off

	reported bool // the power-off event was sent (guarded by the server's omu)
}

// file is one inode. Its durable data is in durablePath; data is what reads see.
type file struct {
	ino     uint64
	mode    uint32
	data    []byte
	dirty   map[int64]bool // pages written since the last fsync
	resized bool           // size changed since the last fsync
	durName string         // its durable name, "" if none
	staged  bool           // durable data in the orphans directory
	alloc   map[int64]bool // pages with a block (LimitSpace)
	mtime   time.Time
}

// newVolume scans the backing directory: every regular file in it is a durable
// file. Anything left in orphans is from before a crash and is dropped.
func newVolume(backing, orphans string) (*volume, error) {
	if err := os.RemoveAll(orphans); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(orphans, 0o700); err != nil {
		return nil, err
	}
	v := &volume{backing: backing, orphans: orphans, dirMode: 0o700, names: map[string]uint64{}, durable: map[string]uint64{},
		files: map[uint64]*file{}, nextIno: 2, faults: noFaults(), offCh: make(chan struct{})}
	ents, err := os.ReadDir(backing)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("faultfs: backing %s: %s is not a regular file (only a flat directory of files is supported)", backing, e.Name())
		}
		data, err := os.ReadFile(filepath.Join(backing, e.Name()))
		if err != nil {
			return nil, err
		}
		f := v.newFile(0o600)
		f.data, f.durName = data, e.Name()
		for p := range pages(0, int64(len(data))) {
			f.alloc[p] = true
		}
		v.names[e.Name()], v.durable[e.Name()] = f.ino, f.ino
	}
	return v, nil
}

func (v *volume) newFile(mode uint32) *file {
	f := &file{ino: v.nextIno, mode: mode, dirty: map[int64]bool{}, alloc: map[int64]bool{}, mtime: time.Now()}
	v.nextIno++
	v.files[f.ino] = f
	return f
}

// pages yields the page numbers that bytes [off, end) touch.
func pages(off, end int64) func(func(int64) bool) {
	return func(yield func(int64) bool) {
		for p := off / PageSize; p*PageSize < end; p++ {
			if !yield(p) {
				return
			}
		}
	}
}

func (v *volume) durablePath(f *file) string {
	switch {
	case f.durName != "":
		return filepath.Join(v.backing, f.durName)
	case f.staged:
		return filepath.Join(v.orphans, strconv.FormatUint(f.ino, 10))
	}
	return ""
}

func (v *volume) lookup(name string) (*file, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ino, ok := v.names[name]
	if !ok {
		return nil, false
	}
	return v.files[ino], true
}

type dirent struct {
	name string
	ino  uint64
}

func (v *volume) list() []dirent {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]dirent, 0, len(v.names))
	for n, ino := range v.names {
		out = append(out, dirent{n, ino})
	}
	slices.SortFunc(out, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out
}

type attr struct {
	ino   uint64
	size  int64
	mode  uint32
	mtime time.Time
}

func (v *volume) attr(f *file) attr {
	v.mu.Lock()
	defer v.mu.Unlock()
	return attr{ino: f.ino, size: int64(len(f.data)), mode: f.mode, mtime: f.mtime}
}

func (v *volume) create(name string, mode uint32) (*file, syscall.Errno) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.names[name]; ok {
		return nil, syscall.EEXIST
	}
	if e := v.change(); e != 0 {
		return nil, e
	}
	f := v.newFile(mode & 0o7777)
	v.names[name] = f.ino
	return f, 0
}

func (v *volume) unlink(name string) syscall.Errno {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.names[name]; !ok {
		return syscall.ENOENT
	}
	if e := v.change(); e != 0 {
		return e
	}
	delete(v.names, name)
	return 0
}

// Flags of renameat2.
const (
	renameNoReplace = 0x1
	renameExchange  = 0x2
)

func (v *volume) rename(old, new string, flags uint32) syscall.Errno {
	v.mu.Lock()
	defer v.mu.Unlock()
	src, ok := v.names[old]
	if !ok {
		return syscall.ENOENT
	}
	dst, exists := v.names[new]
	switch {
	case flags&^(renameNoReplace|renameExchange) != 0:
		return syscall.EINVAL
	case flags&renameNoReplace != 0 && exists:
		return syscall.EEXIST
	case flags&renameExchange != 0 && !exists:
		return syscall.ENOENT
	}
	if e := v.change(); e != 0 {
		return e
	}
	if flags&renameExchange != 0 {
		v.names[old], v.names[new] = dst, src
		return 0
	}
	delete(v.names, old)
	v.names[new] = src
	return 0
}

func (v *volume) read(f *file, dest []byte, off int64) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0
	}
	return copy(dest, f.data[off:])
}

func (v *volume) write(f *file, data []byte, off int64) (int, syscall.Errno) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.change(); e != 0 {
		return 0, e
	}
	if v.faults.failWrite.fire() {
		v.stats.FailedWrites++
		return 0, syscall.EIO
	}
	end := off + int64(len(data))
	if e := v.allocate(f, off, end); e != 0 {
		return 0, e
	}
	if end > int64(len(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
		f.resized = true
	}
	copy(f.data[off:], data)
	for p := range pages(off, end) {
		f.dirty[p] = true
	}
	f.mtime = time.Now()
	v.stats.Writes++
	v.stats.WriteBytes += int64(len(data))
	return len(data), 0
}

// allocate gives the pages of [off, end) that have none a block, or fails with
// ENOSPC when the space limit does not cover them all.
func (v *volume) allocate(f *file, off, end int64) syscall.Errno {
	var need int64
	for p := range pages(off, end) {
		if !f.alloc[p] {
			need++
		}
	}
	if v.faults.space >= 0 && need*PageSize > v.faults.space {
		v.stats.NoSpace++
		return syscall.ENOSPC
	}
	for p := range pages(off, end) {
		f.alloc[p] = true
	}
	if v.faults.space >= 0 {
		v.faults.space -= need * PageSize
	}
	return 0
}

func (v *volume) truncate(f *file, size int64) syscall.Errno {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.change(); e != 0 {
		return e
	}
	old := int64(len(f.data))
	switch {
	case size == old:
		return 0
	case size > old:
		// A hole: no blocks, no dirty pages, only the size changes.
		f.data = append(f.data, make([]byte, size-old)...)
	default:
		clear(f.data[size:])
		f.data = f.data[:size]
		for p := range f.dirty {
			if p*PageSize >= size {
				delete(f.dirty, p)
			}
		}
		if size%PageSize != 0 {
			f.dirty[size/PageSize] = true // its tail is now zeros
		}
		for p := range f.alloc {
			if p*PageSize >= size {
				delete(f.alloc, p)
				if v.faults.space >= 0 {
					v.faults.space += PageSize
				}
			}
		}
	}
	f.resized = true
	f.mtime = time.Now()
	return 0
}

// fsync makes f's data and size durable in its backing file (an orphan file if
// its name is not durable).
func (v *volume) fsync(f *file) syscall.Errno {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fsyncArrives()
	if e := v.change(); e != 0 {
		return e
	}
	v.stats.Fsyncs++
	if v.faults.failFsync.fire() {
		v.stats.FailedFsyncs++
		v.loseUnsynced(f)
		return syscall.EIO
	}
	if len(f.dirty) == 0 && !f.resized {
		return 0
	}
	if v.durablePath(f) == "" {
		f.staged = true
	}
	if err := v.writeBack(f, func(int64) bool { return true }, true); err != nil {
		return errnoOf(err)
	}
	clear(f.dirty)
	f.resized = false
	return 0
}

// writeBack writes f's dirty pages that keep selects into its durable file; with
// all it also sets the file's size and fsyncs it.
func (v *volume) writeBack(f *file, keep func(page int64) bool, all bool) error {
	out, err := os.OpenFile(v.durablePath(f), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, p := range sortedPages(f.dirty) {
		start, end := p*PageSize, min((p+1)*PageSize, int64(len(f.data)))
		if start >= end || !keep(p) {
			continue
		}
		if _, err := out.WriteAt(f.data[start:end], start); err != nil {
			return err
		}
	}
	if !all {
		return nil
	}
	if err := out.Truncate(int64(len(f.data))); err != nil {
		return err
	}
	return out.Sync()
}

func sortedPages(m map[int64]bool) []int64 {
	ps := make([]int64, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// loseUnsynced forgets f's unsynced pages after a failed fsync: the server from
// now on answers what the disk holds for them. The size is the inode's and stays.
func (v *volume) loseUnsynced(f *file) {
	var disk *os.File
	if p := v.durablePath(f); p != "" {
		disk, _ = os.Open(p)
	}
	for p := range f.dirty {
		start, end := p*PageSize, min((p+1)*PageSize, int64(len(f.data)))
		if start >= end {
			continue
		}
		buf := f.data[start:end]
		clear(buf)
		if disk != nil {
			if _, err := disk.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
				clear(buf)
			}
		}
	}
	if disk != nil {
		_ = disk.Close()
	}
	clear(f.dirty)
}

// fsyncDir makes the directory as reads see it durable: names whose inode
// changed move to orphans first, then every name gets its inode's durable data.
func (v *volume) fsyncDir() syscall.Errno {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e := v.change(); e != 0 {
		return e
	}
	v.stats.DirFsyncs++
	for name, ino := range v.durable {
		if v.names[name] == ino {
			continue
		}
		f := v.files[ino]
		f.durName, f.staged = "", true
		if err := os.Rename(filepath.Join(v.backing, name), v.durablePath(f)); err != nil {
			return errnoOf(err)
		}
		delete(v.durable, name)
	}
	for name, ino := range v.names {
		if _, ok := v.durable[name]; ok {
			continue
		}
		f := v.files[ino]
		to := filepath.Join(v.backing, name)
		if f.staged {
			if err := os.Rename(v.durablePath(f), to); err != nil {
				return errnoOf(err)
			}
		} else if err := os.WriteFile(to, nil, 0o600); err != nil {
			// Never fsynced: the name is durable, the data is not.
			return errnoOf(err)
		}
		f.durName, f.staged = name, false
		v.durable[name] = ino
	}
	for _, dir := range []string{v.backing, v.orphans} {
		if err := syncDir(dir); err != nil {
			return errnoOf(err)
		}
	}
	return 0
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}
