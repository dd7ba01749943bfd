//go:build !unix

package store

import "os"

// diskUsage is the space a file takes on disk: its size here.
func diskUsage(fi os.FileInfo) int64 { return fi.Size() }
