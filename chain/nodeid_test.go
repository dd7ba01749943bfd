package chain_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mr-tron/base58"

	"github.com/edgelog/edgelog/chain"
)

// NodeID is libp2p's peer ID of the key, and PublicKey its inverse: the
// node IDs libp2p hosts use and the ones streams are named by are one.
func TestNodeIDIsLibp2pPeerID(t *testing.T) {
	for range 50 {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		lpub, err := crypto.UnmarshalEd25519PublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.IDFromPublicKey(lpub)
		if err != nil {
			t.Fatal(err)
		}
		id := chain.NodeID(pub)
		if id != want.String() {
			t.Fatalf("NodeID = %s, libp2p says %s", id, want)
		}
		back, err := chain.PublicKey(id)
		if err != nil || !back.Equal(pub) {
			t.Fatalf("PublicKey(%s) = %x, %v", id, back, err)
		}
	}
}

func TestPublicKeyRefuses(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	id := chain.NodeID(pub)
	raw, _ := base58.Decode(id)
	lpub, _ := crypto.UnmarshalEd25519PublicKey(pub)
	pid, _ := peer.IDFromPublicKey(lpub)
	_, rsa, _ := crypto.GenerateRSAKeyPair(2048, nil)
	rsaID, _ := peer.IDFromPublicKey(rsa)
	_, secp, _ := crypto.GenerateSecp256k1Key(nil)
	secpID, _ := peer.IDFromPublicKey(secp)
	bad := map[string]string{
		"empty":            "",
		"not base58":       "12D3KooW0OIl",
		"too long":         id + strings.Repeat("1", 20),
		"truncated":        base58.Encode(raw[:len(raw)-1]),
		"extra byte":       base58.Encode(append(raw[:len(raw):len(raw)], 0)),
		"leading zero":     "1" + id, // decodes to the same key with a 0 byte in front
		"CID form":         peer.ToCid(pid).String(),
		"RSA (hashed key)": rsaID.String(),
		"secp256k1":        secpID.String(),
		"wrong key type":   base58.Encode(append([]byte{0x00, 0x24, 0x08, 0x02, 0x12, 0x20}, pub...)),
	}
	for name, s := range bad {
		if _, err := chain.PublicKey(s); !errors.Is(err, chain.ErrNodeID) {
			t.Errorf("%s (%q): err = %v, want ErrNodeID", name, s, err)
		}
	}
}
