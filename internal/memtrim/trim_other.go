//go:build !linux

package memtrim

import "errors"

// Trim is supported on Linux only; elsewhere it trims nothing.
func Trim(s Selector) (uint64, error) {
	return 0, errors.ErrUnsupported
}

// Mappings is supported on Linux only.
func Mappings() ([]Mapping, error) {
	return nil, errors.ErrUnsupported
}
