//go:build !linux

package hugeheap

import (
	"fmt"
	"log/slog"
)

// SystemMode returns Unsupported: transparent huge pages are Linux's.
func SystemMode() Mode { return Unsupported }

// Start returns ErrNotAdvised: transparent huge pages are Linux's.
func Start(log *slog.Logger) (stop func(), err error) {
	return nil, fmt.Errorf("%w: transparent huge pages are %s", ErrNotAdvised, Unsupported)
}
