package p2p

import (
	"github.com/edgelog/edgelog/chain/chaintest"
	"github.com/edgelog/edgelog/replicate/replicatetest"
)

// The shared test store and keys (package replicatetest).
type (
	origin   = replicatetest.Origin
	memStore = replicatetest.MemStore
)

var (
	newOrigin    = replicatetest.NewOrigin
	newMemStore  = replicatetest.NewMemStore
	randomEvents = chaintest.RandomEvents
)
