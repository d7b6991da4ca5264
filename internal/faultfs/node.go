//go:build linux

package faultfs

import (
	"context"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The FUSE side: a root directory and its files, each a thin handle on the
// volume. Files are opened without file handles; every request goes to the node.

type rootNode struct {
	fs.Inode
	v *volume
}

type fileNode struct {
	fs.Inode
	v *volume
	f *file
}

var (
	_ fs.NodeLookuper  = (*rootNode)(nil)
	_ fs.NodeCreater   = (*rootNode)(nil)
	_ fs.NodeUnlinker  = (*rootNode)(nil)
	_ fs.NodeRmdirer   = (*rootNode)(nil)
	_ fs.NodeRenamer   = (*rootNode)(nil)
	_ fs.NodeReaddirer = (*rootNode)(nil)
	_ fs.NodeFsyncer   = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*rootNode)(nil)
	_ fs.NodeSetattrer = (*rootNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeAllocater = (*fileNode)(nil)
	_ fs.NodeStatfser  = (*rootNode)(nil)
)

// openFlags keep the kernel's cached pages across opens: a local file system's
// page cache is not dropped when a file is opened again.
const openFlags = fuse.FOPEN_KEEP_CACHE

func (r *rootNode) child(ctx context.Context, f *file, out *fuse.EntryOut) *fs.Inode {
	fillAttr(&out.Attr, r.v.attr(f))
	return r.NewInode(ctx, &fileNode{v: r.v, f: f}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: f.ino})
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	f, ok := r.v.lookup(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return r.child(ctx, f, out), 0
}

func (r *rootNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	f, e := r.v.create(name, mode)
	if e != 0 {
		return nil, nil, 0, e
	}
	return r.child(ctx, f, out), nil, openFlags, 0
}

func (r *rootNode) Unlink(ctx context.Context, name string) syscall.Errno { return r.v.unlink(name) }

func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if _, ok := r.v.lookup(name); ok {
		return syscall.ENOTDIR
	}
	return syscall.ENOENT
}

func (r *rootNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if newParent.EmbeddedInode() != &r.Inode {
		return syscall.EXDEV
	}
	return r.v.rename(name, newName, flags)
}

func (r *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var ents []fuse.DirEntry
	for _, e := range r.v.list() {
		ents = append(ents, fuse.DirEntry{Name: e.name, Ino: e.ino, Mode: syscall.S_IFREG})
	}
	return fs.NewListDirStream(ents), 0
}

// Fsync of the root is FSYNCDIR: it makes the directory's entries durable.
func (r *rootNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return r.v.fsyncDir()
}

func (r *rootNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.v.mu.Lock()
	out.Mode = syscall.S_IFDIR | r.v.dirMode
	r.v.mu.Unlock()
	return 0
}

// Setattr keeps the directory's mode bits (not across a crash); other
// attributes are accepted and ignored.
func (r *rootNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	r.v.mu.Lock()
	if mode, ok := in.GetMode(); ok {
		r.v.dirMode = mode & 0o7777
	}
	out.Mode = syscall.S_IFDIR | r.v.dirMode
	r.v.mu.Unlock()
	return 0
}

// Statfs reports the backing file system's space, or the space LimitSpace
// left if that is less: a program that checks for room sees a full disk.
func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.v.backing, &st); err != nil {
		return errnoOf(err)
	}
	out.FromStatfsT(&st)
	if left := r.v.spaceLeft(); left >= 0 && out.Bsize > 0 {
		blocks := uint64(left) / uint64(out.Bsize)
		out.Bavail, out.Bfree = min(out.Bavail, blocks), min(out.Bfree, blocks)
	}
	return 0
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if e := n.v.truncate(n.f, 0); e != 0 {
			return nil, 0, e
		}
	}
	return nil, openFlags, 0
}

func (n *fileNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fillAttr(&out.Attr, n.v.attr(n.f))
	return 0
}

// Setattr changes the size; other attributes are accepted and ignored, except
// the mode bits, which are kept.
func (n *fileNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if e := n.v.truncate(n.f, int64(size)); e != 0 {
			return e
		}
	}
	if mode, ok := in.GetMode(); ok {
		n.v.mu.Lock()
		n.f.mode = mode & 0o7777
		n.v.mu.Unlock()
	}
	fillAttr(&out.Attr, n.v.attr(n.f))
	return 0
}

func (n *fileNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return fuse.ReadResultData(dest[:n.v.read(n.f, dest, off)]), 0
}

func (n *fileNode) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	w, e := n.v.write(n.f, data, off)
	return uint32(w), e
}

func (n *fileNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return n.v.fsync(n.f)
}

func (n *fileNode) Flush(ctx context.Context, f fs.FileHandle) syscall.Errno { return 0 }

// Allocate is not modelled: callers fall back to writing.
func (n *fileNode) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func fillAttr(out *fuse.Attr, a attr) {
	out.Ino = a.ino
	out.Size = uint64(a.size)
	out.Blocks = (uint64(a.size) + 511) / 512
	out.Blksize = PageSize
	out.Mode = syscall.S_IFREG | a.mode
	out.Nlink = 1
	t := a.mtime
	out.SetTimes(nil, &t, &t)
}

// mount serves v at dir. The kernel keeps file data cached and drops it only
// when told (never, here) or when the mount goes: see the package comment.
func mount(dir string, v *volume, debug bool) (*fuse.Server, error) {
	sec := time.Second
	return fs.Mount(dir, &rootNode{v: v}, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			FsName:                   "faultfs",
			Name:                     "faultfs",
			DirectMount:              true, // as root, mount(2) itself: no fusermount needed
			ExplicitDataCacheControl: true,
			DisableXAttrs:            true,
			Debug:                    debug,
		},
	})
}
