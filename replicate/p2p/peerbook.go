package p2p

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/edgelog/edgelog/internal/atomicfile"
)

// The peer book remembers the peers a node was connected to, with their
// addresses, so that it redials them after a restart. It lives in the data
// directory as JSON:
//
//	{"version":1,"peers":[{"id":"12D3KooW…","addrs":["/ip4/…/tcp/4455"],"lastSeen":"2026-…"}]}

// Peer book bounds.
const (
	// DefaultPeerBookSize bounds the peers a book keeps; the least recently
	// seen go first.
	DefaultPeerBookSize = 256
	// maxBookAddrs bounds the addresses kept per peer.
	maxBookAddrs = 16
	// maxBookFileBytes bounds a peer book file read at start.
	maxBookFileBytes = 4 << 20
	peerBookVersion  = 1
)

// ErrCorruptPeerBook is wrapped by LoadPeerBook when the file cannot be
// used; the book it returns is then empty.
var ErrCorruptPeerBook = errors.New("corrupt peer book")

// BookEntry is one peer in a PeerBook.
type BookEntry struct {
	ID       peer.ID
	Addrs    []multiaddr.Multiaddr
	LastSeen time.Time
}

// PeerBook is a bounded set of known peers. It is pure (no I/O, no clock)
// except for LoadPeerBook and Save, and not safe for concurrent use.
type PeerBook struct {
	max     int
	entries map[peer.ID]*BookEntry
}

// NewPeerBook returns an empty book keeping at most max peers
// (DefaultPeerBookSize if max <= 0).
func NewPeerBook(max int) *PeerBook {
	if max <= 0 {
		max = DefaultPeerBookSize
	}
	return &PeerBook{max: max, entries: map[peer.ID]*BookEntry{}}
}

// Len returns the number of peers in the book.
func (b *PeerBook) Len() int { return len(b.entries) }

// Seen records that id was connected at now with addrs (relay addresses
// are dropped, at most 16 are kept); an empty addrs keeps the addresses
// known before. It evicts the least recently seen peer when the book is
// full, and reports whether the book changed.
func (b *PeerBook) Seen(id peer.ID, addrs []multiaddr.Multiaddr, now time.Time) bool {
	addrs = bookAddrs(addrs)
	e := b.entries[id]
	if e == nil {
		if len(b.entries) >= b.max {
			b.evictOldest()
		}
		e = &BookEntry{ID: id}
		b.entries[id] = e
	} else if len(addrs) == 0 || sameAddrs(e.Addrs, addrs) {
		changed := now.Sub(e.LastSeen) >= time.Minute
		if changed {
			e.LastSeen = now
		}
		return changed
	}
	if len(addrs) > 0 {
		e.Addrs = addrs
	}
	e.LastSeen = now
	return true
}

// Remove drops id from the book.
func (b *PeerBook) Remove(id peer.ID) { delete(b.entries, id) }

// Get returns id's entry; the entry is the caller's.
func (b *PeerBook) Get(id peer.ID) (BookEntry, bool) {
	e := b.entries[id]
	if e == nil {
		return BookEntry{}, false
	}
	return BookEntry{ID: e.ID, Addrs: slices.Clone(e.Addrs), LastSeen: e.LastSeen}, true
}

// Entries returns the book's entries, most recently seen first (ties by
// peer ID). The slice is the caller's.
func (b *PeerBook) Entries() []BookEntry {
	out := make([]BookEntry, 0, len(b.entries))
	for _, e := range b.entries {
		out = append(out, BookEntry{ID: e.ID, Addrs: slices.Clone(e.Addrs), LastSeen: e.LastSeen})
	}
	slices.SortFunc(out, func(x, y BookEntry) int {
		if c := y.LastSeen.Compare(x.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	return out
}

func (b *PeerBook) evictOldest() {
	var old *BookEntry
	for _, e := range b.entries {
		if old == nil || e.LastSeen.Before(old.LastSeen) || (e.LastSeen.Equal(old.LastSeen) && e.ID > old.ID) {
			old = e
		}
	}
	if old != nil {
		delete(b.entries, old.ID)
	}
}

func bookAddrs(addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, a := range addrs {
		if a == nil || len(out) == maxBookAddrs {
			continue
		}
		if _, err := a.ValueForProtocol(multiaddr.P_CIRCUIT); err == nil {
			continue
		}
		if !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y multiaddr.Multiaddr) int { return cmp.Compare(x.String(), y.String()) })
	return out
}

func sameAddrs(a, b []multiaddr.Multiaddr) bool {
	return slices.EqualFunc(a, b, func(x, y multiaddr.Multiaddr) bool { return x.Equal(y) })
}

type bookFile struct {
	Version int         `json:"version"`
	Peers   []bookEntry `json:"peers"`
}

type bookEntry struct {
	ID       string    `json:"id"`
	Addrs    []string  `json:"addrs"`
	LastSeen time.Time `json:"lastSeen"`
}

// MarshalJSON encodes the book in its file format, leaving out peers
// without addresses.
func (b *PeerBook) MarshalJSON() ([]byte, error) {
	f := bookFile{Version: peerBookVersion, Peers: []bookEntry{}}
	for _, e := range b.Entries() {
		if len(e.Addrs) == 0 {
			continue // cannot be dialled; it is added again when it connects
		}
		be := bookEntry{ID: e.ID.String(), LastSeen: e.LastSeen.UTC()}
		for _, a := range e.Addrs {
			be.Addrs = append(be.Addrs, a.String())
		}
		f.Peers = append(f.Peers, be)
	}
	return json.MarshalIndent(f, "", "  ")
}

// ParsePeerBook decodes a book file into a book keeping at most max peers.
// Entries with a bad peer ID are an error; bad addresses are skipped. If the
// file holds more peers than max, the most recently seen are kept.
func ParsePeerBook(data []byte, max int) (*PeerBook, error) {
	var f bookFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptPeerBook, err)
	}
	if f.Version != peerBookVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorruptPeerBook, f.Version, peerBookVersion)
	}
	b := NewPeerBook(max)
	// Most recent first, so that a bound keeps the most recent.
	slices.SortStableFunc(f.Peers, func(x, y bookEntry) int { return y.LastSeen.Compare(x.LastSeen) })
	for _, be := range f.Peers {
		if b.Len() == b.max {
			break
		}
		id, err := peer.Decode(be.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: peer %q: %v", ErrCorruptPeerBook, be.ID, err)
		}
		var addrs []multiaddr.Multiaddr
		for _, s := range be.Addrs {
			if a, err := multiaddr.NewMultiaddr(s); err == nil {
				addrs = append(addrs, a)
			}
		}
		b.Seen(id, addrs, be.LastSeen)
	}
	return b, nil
}

// LoadPeerBook reads the book at path. A missing file gives an empty book
// and no error; a file that cannot be read or parsed gives an empty book
// and an error wrapping ErrCorruptPeerBook, for the caller to log.
func LoadPeerBook(path string, max int) (*PeerBook, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return NewPeerBook(max), nil
	}
	if err != nil {
		return NewPeerBook(max), fmt.Errorf("%w: %s: %v", ErrCorruptPeerBook, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBookFileBytes+1))
	if err != nil {
		return NewPeerBook(max), fmt.Errorf("%w: %s: %v", ErrCorruptPeerBook, path, err)
	}
	n := len(data)
	if n > maxBookFileBytes {
		return NewPeerBook(max), fmt.Errorf("%w: %s is larger than %d bytes", ErrCorruptPeerBook, path, maxBookFileBytes)
	}
	b, err := ParsePeerBook(data[:n], max)
	if err != nil {
		return NewPeerBook(max), fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Save writes the book to path atomically: to a temporary file in the
// same directory, synced, then renamed over path, so a crash leaves either
// the old or the new book.
func (b *PeerBook) Save(path string) error {
	data, err := b.MarshalJSON()
	if err != nil {
		return fmt.Errorf("peer book: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("peer book: %w", err)
	}
	return nil
}
