package replicatetest_test

import (
	"github.com/edgelog/edgelog/replicate"
	"github.com/edgelog/edgelog/replicate/replicatetest"
)

var _ replicate.Store = (*replicatetest.MemStore)(nil)
