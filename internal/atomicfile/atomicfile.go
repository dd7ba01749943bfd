// Package atomicfile replaces files so that a crash leaves either the old
// or the new content, never a mix or a truncated file.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data and mode perm: it writes a temporary file
// in the same directory, syncs it, renames it over path and syncs the
// directory so that the rename survives a crash where the platform allows.
// On error path is unchanged and the temporary file is removed.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
