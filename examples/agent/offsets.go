package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fingerprintBytes is how much of a file's start identifies it together
// with its device and inode: an inode number reused by a new file, or a
// file truncated and rewritten in place (copytruncate), shows a different
// fingerprint.
const fingerprintBytes = 1024

// fileID is a file's identity: the name can change under rotation, the
// device and inode do not.
type fileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func idOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, true //nolint:unconvert // field types differ by platform
}

// fingerprint is a hash of a file's first Len bytes.
type fingerprint struct {
	Len  int64  `json:"len"`
	Hash string `json:"sha256"`
}

// readFingerprint hashes the first min(size, fingerprintBytes) bytes of f.
func readFingerprint(f io.ReaderAt, size int64) (fingerprint, error) {
	n := min(size, fingerprintBytes)
	return hashPrefix(f, n)
}

func hashPrefix(f io.ReaderAt, n int64) (fingerprint, error) {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return fingerprint{}, err
	}
	sum := sha256.Sum256(buf)
	return fingerprint{Len: n, Hash: hex.EncodeToString(sum[:])}, nil
}

// matches reports whether f (of the given size) still starts with the bytes
// fp was taken from.
func (fp fingerprint) matches(f io.ReaderAt, size int64) (bool, error) {
	if size < fp.Len {
		return false, nil
	}
	got, err := hashPrefix(f, fp.Len)
	if err != nil {
		return false, err
	}
	return got.Hash == fp.Hash, nil
}

// savedFile is one file's confirmed position in the offsets file: every
// line before Offset was written to the stream (or reported as failed).
type savedFile struct {
	Path        string      `json:"path"`
	ID          fileID      `json:"id"`
	Fingerprint fingerprint `json:"fingerprint"`
	Offset      int64       `json:"offset"`
	Line        int64       `json:"line"` // lines before Offset
}

type offsetsFile struct {
	Version int         `json:"version"`
	Files   []savedFile `json:"files"`
}

const offsetsVersion = 1

// loadOffsets reads the offsets file; a missing file is an empty one.
func loadOffsets(path string) ([]savedFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offsets: %w", err)
	}
	var of offsetsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&of); err != nil {
		return nil, fmt.Errorf("offsets %s: %w", path, err)
	}
	if of.Version != offsetsVersion {
		return nil, fmt.Errorf("offsets %s: version %d, want %d", path, of.Version, offsetsVersion)
	}
	return of.Files, nil
}

// saveOffsets replaces the offsets file atomically: a crash leaves either
// the old or the new content, never a torn file. It writes a temporary file
// in the same directory, fsyncs it, renames it over the old one and fsyncs
// the directory so the rename itself survives a power cut.
func saveOffsets(path string, files []savedFile) error {
	b, err := json.MarshalIndent(offsetsFile{Version: offsetsVersion, Files: files}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("offsets: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("offsets: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("offsets: sync %s: %w", dir, err)
	}
	return nil
}
