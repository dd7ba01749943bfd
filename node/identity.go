package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// keyFile is the node's private key inside the data directory.
const keyFile = "node.key"

// Identity is a node's key pair and the NodeID derived from it.
type Identity struct {
	Key crypto.PrivKey
	ID  peer.ID
}

// Ed25519 returns the identity's key in the standard library's form.
func (id Identity) Ed25519() (ed25519.PrivateKey, error) {
	raw, err := id.Key.Raw()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity: unexpected key size %d", len(raw))
	}
	return ed25519.PrivateKey(raw), nil
}

// LoadIdentity reads the node key from dir, creating dir and a new Ed25519
// key (file mode 0600) on first start. A key file readable by others is
// refused rather than silently used.
func LoadIdentity(dir string) (Identity, error) {
	path := filepath.Join(dir, keyFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return createIdentity(dir, path)
	case err != nil:
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Identity{}, fmt.Errorf("identity: %s has mode %v: it must be readable by its owner only (chmod 600)", path, st.Mode().Perm())
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %s: %w", path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return Identity{}, fmt.Errorf("identity: %s: key type %v, want Ed25519", path, key.Type())
	}
	return newIdentity(key)
}

// NewIdentity makes a fresh identity that is not stored anywhere.
func NewIdentity() (Identity, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	return newIdentity(key)
}

func createIdentity(dir, path string) (Identity, error) {
	id, err := NewIdentity()
	if err != nil {
		return Identity{}, err
	}
	data, err := crypto.MarshalPrivateKey(id.Key)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	// Write to a temporary file and rename, so a crash never leaves a
	// truncated key behind.
	tmp, err := os.CreateTemp(dir, keyFile+".*")
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created the key first: use that one.
			return LoadIdentity(dir)
		}
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

func newIdentity(key crypto.PrivKey) (Identity, error) {
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	return Identity{Key: key, ID: pid}, nil
}
