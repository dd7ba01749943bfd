package chain

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/mr-tron/base58"
)

// A NodeID is the libp2p peer ID of a node's Ed25519 key, as text: the
// base58btc encoding of the identity multihash of the key in libp2p's
// protobuf form. The key is inside the ID, so anyone can check a stream's
// heads from its name alone, without a key registry.
//
// Only this canonical form is accepted: a node has exactly one NodeID,
// and so each of its streams exactly one name.

// idPrefix is what precedes the 32 key bytes in an Ed25519 peer ID: the
// identity multihash code (0x00) and length (36), then the protobuf
// PublicKey message's Type field (1: Ed25519) and the header of its Data
// field (32 bytes).
var idPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// ErrNodeID is wrapped by PublicKey's errors.
var ErrNodeID = errors.New("not the NodeID of an Ed25519 key")

// NodeID returns the NodeID of pub.
func NodeID(pub ed25519.PublicKey) string {
	b := make([]byte, 0, len(idPrefix)+ed25519.PublicKeySize)
	return base58.Encode(append(append(b, idPrefix...), pub...))
}

// PublicKey recovers the Ed25519 key inside id. Errors wrap ErrNodeID.
func PublicKey(id string) (ed25519.PublicKey, error) {
	// 38 bytes take at most 52 base58 digits; refuse longer input before
	// decoding it.
	if len(id) == 0 || len(id) > 60 {
		return nil, fmt.Errorf("%w: %d characters", ErrNodeID, len(id))
	}
	b, err := base58.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNodeID, err)
	}
	if len(b) != len(idPrefix)+ed25519.PublicKeySize || !bytes.HasPrefix(b, idPrefix) {
		return nil, ErrNodeID
	}
	if base58.Encode(b) != id {
		return nil, fmt.Errorf("%w: not in canonical form", ErrNodeID)
	}
	return ed25519.PublicKey(b[len(idPrefix):]), nil
}
