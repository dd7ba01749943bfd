package node

import "encoding/binary"

// appendRecord appends r as a record of layout 5 and 6 (recordV1), which
// blocks of those layouts hold. Nodes write recordV2 now (block.go); tests
// make old blocks with this, to check that they still read.
func appendRecord(b []byte, r *record) []byte {
	payload, flags := packPayload(r.payload)
	b = append(b, recordV1, flags)
	b = binary.AppendVarint(b, r.timestamp)
	b = binary.AppendUvarint(b, uint64(len(r.tags)))
	for _, t := range r.tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.appID)))
	b = append(b, r.appID...)
	return append(b, payload...)
}
