package store

import "encoding/binary"

// appendRecord appends r as a record of layout 5 and 6 (recordV1), which
// blocks of those layouts hold. Nodes write recordV2 now (block.go); tests
// make old blocks with this, to check that they still read.
func appendRecord(b []byte, r *record) []byte {
	payload, flags := packPayload(r.payload)
	b = append(b, recordV1, flags)
	b = binary.AppendVarint(b, r.timestamp)
	b = appendStrings(b, r.tags)
	b = appendString(b, r.appID)
	return append(b, payload...)
}
