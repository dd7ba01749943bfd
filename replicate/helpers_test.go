package replicate

import (
	"github.com/edgelog/edgelog/chain/chaintest"
	"github.com/edgelog/edgelog/replicate/replicatetest"
)

// The shared test store and keys (package replicatetest).
type memStore = replicatetest.MemStore

var (
	newOrigin    = replicatetest.NewOrigin
	newMemStore  = replicatetest.NewMemStore
	randomEvents = chaintest.RandomEvents
)

const blockEvents = replicatetest.BlockEvents
