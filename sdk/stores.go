package sdk

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgelog/edgelog/event"
)

// ConsumerStatus is what a durable consumer reports to its node: its
// checkpoint, its blocked streams and whether it runs. Nodes keep one per
// app and consumer name and show them in node info.
type ConsumerStatus = event.ConsumerStatus

// ConsumerStore keeps the status (and so the checkpoint) of durable
// consumers, per consumer name. *Embedded and *Remote keep it on their node,
// written like events (durable when SaveConsumer returns);
// sdktest.MemLog and MemConsumerStore keep it in memory. Implementations
// must be safe for concurrent use.
type ConsumerStore interface {
	// LoadConsumer returns the status last saved for name.
	LoadConsumer(ctx context.Context, name string) (ConsumerStatus, bool, error)
	// SaveConsumer replaces the status of s.Name.
	SaveConsumer(ctx context.Context, s ConsumerStatus) error
}

var (
	_ ConsumerStore = (*Embedded)(nil)
	_ ConsumerStore = (*Remote)(nil)
	_ ConsumerStore = (*MemConsumerStore)(nil)
)

// MemConsumerStore is a ConsumerStore in memory, for tests and for event
// logs that keep no consumer status.
type MemConsumerStore struct {
	mu sync.Mutex
	m  map[string]ConsumerStatus
}

// NewMemConsumerStore returns an empty MemConsumerStore.
func NewMemConsumerStore() *MemConsumerStore {
	return &MemConsumerStore{m: map[string]ConsumerStatus{}}
}

// LoadConsumer returns the status of name.
func (m *MemConsumerStore) LoadConsumer(_ context.Context, name string) (ConsumerStatus, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[name]
	return cloneStatus(s), ok, nil
}

// SaveConsumer stores s, stamping Updated.
func (m *MemConsumerStore) SaveConsumer(_ context.Context, s ConsumerStatus) error {
	if err := event.ValidateConsumerStatus(&s); err != nil {
		return fmt.Errorf("sdk: save consumer: %w", err)
	}
	s = cloneStatus(s)
	s.Updated = time.Now().UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[s.Name] = s
	return nil
}

// Consumers returns every stored status, by name.
func (m *MemConsumerStore) Consumers() []ConsumerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ConsumerStatus, 0, len(m.m))
	for _, s := range m.m {
		out = append(out, cloneStatus(s))
	}
	slices.SortFunc(out, func(a, b ConsumerStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func cloneStatus(s ConsumerStatus) ConsumerStatus {
	s.Checkpoint = s.Checkpoint.Clone()
	s.Blocked = slices.Clone(s.Blocked)
	return s
}

// LoadConsumer returns what this app's consumer name last saved on the
// node.
func (e *Embedded) LoadConsumer(ctx context.Context, name string) (ConsumerStatus, bool, error) {
	s, ok, err := e.n.Consumer(ctx, e.appID, name)
	if err != nil {
		return ConsumerStatus{}, false, fmt.Errorf("sdk: load consumer %s: %w", name, err)
	}
	return s, ok, nil
}

// SaveConsumer stores s on the node, under this app; it shows in node info.
func (e *Embedded) SaveConsumer(ctx context.Context, s ConsumerStatus) error {
	if err := e.n.PutConsumer(ctx, e.appID, s); err != nil {
		return fmt.Errorf("sdk: save consumer %s: %w", s.Name, err)
	}
	return nil
}

// LoadConsumer returns what this app's consumer name last saved on the
// node.
func (r *Remote) LoadConsumer(ctx context.Context, name string) (ConsumerStatus, bool, error) {
	s, ok, err := r.c.Consumer(ctx, name)
	if err != nil {
		return ConsumerStatus{}, false, remoteErr("load consumer "+name, err)
	}
	return s, ok, nil
}

// SaveConsumer stores s on the node, under this client's app.
func (r *Remote) SaveConsumer(ctx context.Context, s ConsumerStatus) error {
	if err := r.c.PutConsumer(ctx, s); err != nil {
		return remoteErr("save consumer "+s.Name, err)
	}
	return nil
}

// defaultSnapshots returns the snapshot store of o, or a file store in dir
// (in memory without a dir).
func defaultSnapshots(o options, dir string) (SnapshotStore, error) {
	if o.snapshots != nil {
		return o.snapshots, nil
	}
	if dir == "" {
		return NewMemSnapshotStore(), nil
	}
	s, err := NewFileSnapshotStore(filepath.Join(dir, "snapshots"))
	if err != nil {
		return nil, err
	}
	return s, nil
}
