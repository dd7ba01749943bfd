//go:build unix

package store

import (
	"os"
	"syscall"
)

// diskUsage is the space a file takes on disk (sparse files count less).
func diskUsage(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
