package event

import (
	"fmt"
	"strconv"
	"strings"
)

// StreamID names a stream: "<NodeID>-<n>". Only the node NodeID writes it.
type StreamID string

// MaxStreamIDLen bounds the length of a stream ID accepted from outside.
const MaxStreamIDLen = 128

// NewStreamID returns the ID of stream n of node.
func NewStreamID(node string, n uint64) StreamID {
	return StreamID(node + "-" + strconv.FormatUint(n, 10))
}

// ParseStreamID splits id into its node ID and stream number, checking its form.
func ParseStreamID(id string) (node string, n uint64, err error) {
	if id == "" || len(id) > MaxStreamIDLen {
		return "", 0, fmt.Errorf("invalid stream id %q: length must be 1..%d", id, MaxStreamIDLen)
	}
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || i == len(id)-1 {
		return "", 0, fmt.Errorf("invalid stream id %q: want <nodeId>-<n>", id)
	}
	n, err = strconv.ParseUint(id[i+1:], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("invalid stream id %q: stream number: %w", id, err)
	}
	for _, r := range id[:i] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", 0, fmt.Errorf("invalid stream id %q: node id must be alphanumeric", id)
		}
	}
	return id[:i], n, nil
}

// Valid reports whether s has the form of a stream ID.
func (s StreamID) Valid() bool {
	_, _, err := ParseStreamID(string(s))
	return err == nil
}

// Node returns the ID of the node that writes s, or "" if s is malformed.
func (s StreamID) Node() string {
	node, _, _ := ParseStreamID(string(s))
	return node
}
