package replicate

import (
	"crypto/sha256"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/event"
)

// Hash is a chain hash: SHA-256 over the previous hash and an event.
type Hash = [32]byte

// Genesis is the chain hash before a stream's first event (h_{-1}).
var Genesis Hash

// Head is the state of a stream after its event at Offset: that event's
// Lamport time and chain hash.
type Head struct {
	Stream  event.StreamID
	Offset  uint64
	Lamport uint64
	Hash    Hash
}

// SignedHead is a Head signed by the stream's origin.
type SignedHead struct {
	Head
	Sig []byte
}

// maxSigLen bounds a signature accepted from outside (Ed25519: 64 bytes).
const maxSigLen = 128

// ChainHash returns h_k = SHA-256(prev || canonical(e)).
func ChainHash(prev Hash, e *event.Event) Hash {
	var buf [512]byte
	b := append(buf[:0], prev[:]...)
	b = AppendCanonical(b, e)
	return sha256.Sum256(b)
}

// ChainHashes folds ChainHash over events, returning the hash after the last.
func ChainHashes(prev Hash, events []event.Event) Hash {
	for i := range events {
		prev = ChainHash(prev, &events[i])
	}
	return prev
}

// SignHead signs h with key, the private key of h.Stream's origin. It
// refuses to sign a head of a stream whose NodeID is not key's peer ID.
func SignHead(key crypto.PrivKey, h Head) (SignedHead, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return SignedHead{}, fmt.Errorf("sign head: %w", err)
	}
	if h.Stream.Node() != id.String() {
		return SignedHead{}, fmt.Errorf("sign head: stream %q is not written by %s", h.Stream, id)
	}
	sig, err := key.Sign(headMessage(h))
	if err != nil {
		return SignedHead{}, fmt.Errorf("sign head: %w", err)
	}
	return SignedHead{Head: h, Sig: sig}, nil
}

// originKey recovers the public key of stream's origin from its NodeID.
func originKey(stream event.StreamID) (crypto.PubKey, error) {
	node := stream.Node()
	if node == "" {
		return nil, fmt.Errorf("%w: invalid stream id %q", ErrBadSignature, stream)
	}
	id, err := peer.Decode(node)
	if err != nil {
		return nil, fmt.Errorf("%w: stream %s: node id: %v", ErrBadSignature, stream, err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: stream %s: no public key in node id: %v", ErrBadSignature, stream, err)
	}
	return pub, nil
}

// VerifyHead checks sh's signature against the key of its stream's origin.
func VerifyHead(sh SignedHead) error {
	if len(sh.Sig) == 0 || len(sh.Sig) > maxSigLen {
		return fmt.Errorf("%w: stream %s: signature of %d bytes", ErrBadSignature, sh.Stream, len(sh.Sig))
	}
	pub, err := originKey(sh.Stream)
	if err != nil {
		return err
	}
	ok, err := pub.Verify(headMessage(sh.Head), sh.Sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: stream %s offset %d", ErrBadSignature, sh.Stream, sh.Offset)
	}
	return nil
}

// VerifyRange checks that events are exactly the offsets have+1 ..
// head.Offset of head.Stream in order, with strictly increasing Lamport
// times, that they chain from prev (the hash at offset have; Genesis when
// have is -1) to head.Hash, that the last event's Lamport time is
// head.Lamport, and that head is signed by the stream's origin. Errors wrap
// ErrIntegrity and one of ErrGap, ErrWrongStream, ErrLamportOrder,
// ErrBrokenChain or ErrBadSignature.
func VerifyRange(prev Hash, have int64, events []event.Event, head SignedHead) error {
	return verifyRange(prev, have, events, head, VerifyHead)
}

// verifyRange is VerifyRange with checkSig checking head's signature.
func verifyRange(prev Hash, have int64, events []event.Event, head SignedHead, checkSig func(SignedHead) error) error {
	v := NewVerifier(head.Stream, have, 0, prev)
	v.checkSig = checkSig
	if err := v.Add(events); err != nil {
		return err
	}
	ok, err := v.Checkpoint(head)
	if err != nil {
		return err
	}
	if len(ok) != len(events) {
		return fmt.Errorf("%w: %d events beyond the signed head at %d", ErrGap, len(events)-len(ok), head.Offset)
	}
	return nil
}
