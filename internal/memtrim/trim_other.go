//go:build !linux

package memtrim

import "errors"

// Trim is supported on Linux only; elsewhere it trims nothing.
func Trim(s Selector) (uint64, error) {
	return 0, errors.ErrUnsupported
}
