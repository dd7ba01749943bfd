package chain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

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

// MaxSigLen bounds a signature accepted from outside (Ed25519: 64 bytes);
// decoders refuse longer ones before they are checked.
const MaxSigLen = 128

// Link returns h_k = SHA-256(prev || canonical(e)), the chain hash after e
// when prev is the hash before it.
func Link(prev Hash, e *event.Event) Hash {
	var buf [512]byte
	b := append(buf[:0], prev[:]...)
	b = AppendCanonical(b, e)
	return sha256.Sum256(b)
}

// LinkAll folds Link over events, returning the hash after the last.
func LinkAll(prev Hash, events []event.Event) Hash {
	for i := range events {
		prev = Link(prev, &events[i])
	}
	return prev
}

// SignHead signs h with key, the private key of h.Stream's origin. It
// refuses to sign a head of a stream whose NodeID is not key's.
func SignHead(key ed25519.PrivateKey, h Head) (SignedHead, error) {
	if len(key) != ed25519.PrivateKeySize {
		return SignedHead{}, fmt.Errorf("sign head: key of %d bytes, want an Ed25519 private key", len(key))
	}
	if id := NodeID(key.Public().(ed25519.PublicKey)); h.Stream.Node() != id {
		return SignedHead{}, fmt.Errorf("sign head: stream %q is not written by %s", h.Stream, id)
	}
	return SignedHead{Head: h, Sig: ed25519.Sign(key, headMessage(h))}, nil
}

// VerifyHead checks sh's signature against the key of its stream's origin,
// recovered from the stream's NodeID. Errors wrap ErrBadSignature.
func VerifyHead(sh SignedHead) error {
	if len(sh.Sig) == 0 || len(sh.Sig) > MaxSigLen {
		return fmt.Errorf("%w: stream %s: signature of %d bytes", ErrBadSignature, sh.Stream, len(sh.Sig))
	}
	node := sh.Stream.Node()
	if node == "" {
		return fmt.Errorf("%w: invalid stream id %q", ErrBadSignature, sh.Stream)
	}
	pub, err := PublicKey(node)
	if err != nil {
		return fmt.Errorf("%w: stream %s: %v", ErrBadSignature, sh.Stream, err)
	}
	if !ed25519.Verify(pub, headMessage(sh.Head), sh.Sig) {
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
	return VerifyRangeWith(prev, have, events, head, VerifyHead)
}

// VerifyRangeWith is VerifyRange with checkSig checking head's signature:
// VerifyHead, or a cache of heads already verified in front of it.
func VerifyRangeWith(prev Hash, have int64, events []event.Event, head SignedHead, checkSig func(SignedHead) error) error {
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
