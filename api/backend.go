package api

import (
	"context"
	"iter"

	"github.com/edgelog/edgelog/event"
)

// Backend is the node the HTTP API serves. *node.Node implements it.
//
// Errors wrap the sentinels of package event (ErrInvalid, ErrTooLarge,
// ErrStorageFull, ErrUnavailable), which the API maps to HTTP statuses.
// The sequences end when ctx is cancelled; Query ends by itself after its
// final offsets item, Subscribe never does, SubscribeMonotonic after a
// time-travel item.
type Backend interface {
	NodeID() string
	Info(ctx context.Context) (event.NodeInfo, error)
	Offsets(ctx context.Context) (event.Offsets, error)
	Publish(ctx context.Context, appID string, drafts []event.Draft) ([]event.Meta, error)
	Query(ctx context.Context, req event.QueryRequest) iter.Seq2[event.Item, error]
	Subscribe(ctx context.Context, req event.SubscribeRequest) iter.Seq2[event.Item, error]
	SubscribeMonotonic(ctx context.Context, req event.MonotonicRequest) iter.Seq2[event.Item, error]
}
