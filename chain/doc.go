// Package chain proves that a stream's events are the ones its origin
// wrote. It is pure: no network, no disk, no clock.
//
// Every stream is a hash chain: h_k = SHA-256(h_{k-1} || canonical(e_k)),
// h_{-1} = Genesis (32 zero bytes), where canonical is the deterministic
// CBOR array of AppendCanonical. The stream's origin signs heads (stream,
// offset, lamport, h_offset) with the Ed25519 key whose NodeID names the
// stream, so anyone can check any stream without a key registry. A node
// stores received events only up to a signed head that verifies, and keeps
// that head (a checkpoint) to serve the range on: relays pass on the
// origin's signatures and cannot forge, drop from the middle, reorder or
// alter events.
//
// Link and LinkAll compute chain hashes; SignHead and VerifyHead sign and
// check heads; VerifyRange checks a whole range against a signed head, and
// a Verifier does the same for a range that arrives in pieces. Entry and
// Block are the units a store hands out when it serves a stream.
//
// The encodings here (AppendCanonical and the signed head message) are
// part of the on-disk and wire formats: changing a byte of them breaks
// every stored chain.
package chain
