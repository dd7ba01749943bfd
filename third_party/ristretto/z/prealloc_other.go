//go:build !linux

// edgelog addition (see ../PATCHES.md).

package z

import "os"

// preallocate does nothing here: files stay sparse (prealloc_linux.go).
func preallocate(*os.File, int64) error { return nil }
