package node

import (
	"fmt"

	"github.com/edgelog/edgelog/store"
)

// Config configures a node. Only Store.DataDir is required (or
// Store.InMemory); Store.Key is set from the node's identity.
type Config struct {
	// Store configures the event store. DataDir also holds the node's key
	// (node.key) and peer book; with InMemory and no DataDir the node gets
	// a fresh key each start.
	Store store.Config
	// Replication, if set, replicates with peers over libp2p.
	Replication *Replication
	// Version is reported by Info (default "dev").
	Version string
}

func (c Config) withDefaults() (Config, error) {
	if c.Store.DataDir == "" && !c.Store.InMemory {
		return c, fmt.Errorf("node config: Store.DataDir is required")
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c, nil
}
