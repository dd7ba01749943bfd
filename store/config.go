package store

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgelog/edgelog/expiry"
)

// Durability says when a publish is acknowledged.
type Durability string

const (
	// DurabilitySync acknowledges a publish after its events are fsynced.
	// Concurrent publishers share one transaction and one fsync (group commit).
	DurabilitySync Durability = "sync"
	// DurabilityAsync acknowledges once events are written to the OS; a
	// power loss may lose the last acknowledged events, a process crash not.
	DurabilityAsync Durability = "async"
)

// Limits bound what one publish may carry. Zero fields take the defaults.
type Limits struct {
	MaxPayloadBytes     int `yaml:"maxPayloadBytes"`     // CBOR size of one payload
	MaxTagsPerEvent     int `yaml:"maxTagsPerEvent"`     // tags on one event
	MaxTagBytes         int `yaml:"maxTagBytes"`         // length of one tag
	MaxEventsPerPublish int `yaml:"maxEventsPerPublish"` // events in one publish
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{
	MaxPayloadBytes:     256 << 10,
	MaxTagsPerEvent:     64,
	MaxTagBytes:         256,
	MaxEventsPerPublish: 10000,
}

// WithDefaults returns l with its zero fields set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxPayloadBytes > 0 {
		d.MaxPayloadBytes = l.MaxPayloadBytes
	}
	if l.MaxTagsPerEvent > 0 {
		d.MaxTagsPerEvent = l.MaxTagsPerEvent
	}
	if l.MaxTagBytes > 0 {
		d.MaxTagBytes = l.MaxTagBytes
	}
	if l.MaxEventsPerPublish > 0 {
		d.MaxEventsPerPublish = l.MaxEventsPerPublish
	}
	return d
}

// Config configures a Store. DataDir (or InMemory) and Key are required.
type Config struct {
	// DataDir is the node's data directory; the database lives in its db
	// subdirectory.
	DataDir string
	// InMemory keeps the database in memory (tests); DataDir may be empty.
	InMemory bool
	// Key is the node's Ed25519 key: it names the node's streams
	// (chain.NodeID) and signs their heads.
	Key ed25519.PrivateKey
	// Durability defaults to DurabilitySync.
	Durability Durability
	// Limits on published events; zero fields take DefaultLimits.
	Limits Limits
	// Storage tunes the database; zero fields take defaults.
	Storage Storage
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// IdempotencyTTL is how long the store remembers an idempotency key
	// after its publish (default DefaultIdempotencyTTL, 7 days; negative:
	// forever). Expiry follows the wall clock.
	IdempotencyTTL time.Duration
	// Routes send new events into named streams: the first route whose
	// query matches wins, else stream 0 (see package expiry).
	Routes []expiry.Route
	// Streams declares the named streams and their retention; the name
	// "default" sets stream 0's. A name keeps its stream number for good.
	Streams map[string]expiry.Retention
	// PruneInterval is how often retention is checked without writes
	// (for maxAge; default 1 minute). Writes trigger pruning too.
	PruneInterval time.Duration
	// Now is the store's clock for event timestamps and maxAge (default
	// time.Now); tests inject one.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" && !c.InMemory {
		return c, fmt.Errorf("store config: DataDir is required")
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return c, fmt.Errorf("store config: Key is not an Ed25519 private key")
	}
	switch c.Durability {
	case "":
		c.Durability = DurabilitySync
	case DurabilitySync, DurabilityAsync:
	default:
		return c, fmt.Errorf("store config: durability %q: want %q or %q", c.Durability, DurabilitySync, DurabilityAsync)
	}
	c.Limits = c.Limits.WithDefaults()
	st, err := c.Storage.resolve(DetectHost())
	if err != nil {
		return c, fmt.Errorf("store config: %w", err)
	}
	c.Storage = st
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = time.Minute
	}
	return c, nil
}
