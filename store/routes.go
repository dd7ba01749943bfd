package store

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// assignStreamNumbers returns the stream number of every name, keeping the
// numbers stored in db and giving new names the next free numbers (in
// name order). Numbers are never reused, so a name keeps its number across
// restarts and rule changes. A database opened read-only (readOnly, the
// reason) cannot number a new name.
func assignStreamNumbers(db *badger.DB, names []string, readOnly error) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := db.Update(func(txn *badger.Txn) error {
		var maxNo uint64
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxStreamNo}})
		for it.Rewind(); it.Valid(); it.Next() {
			var no uint64
			err := it.Item().Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: stream number of %q", errBadRecord, it.Item().Key()[1:])
				}
				no = binary.BigEndian.Uint64(v)
				return nil
			})
			if err != nil {
				it.Close()
				return err
			}
			out[string(it.Item().Key()[1:])] = no
			maxNo = max(maxNo, no)
		}
		it.Close()
		for _, name := range slices.Sorted(slices.Values(names)) {
			if _, ok := out[name]; ok {
				continue
			}
			if readOnly != nil {
				return fmt.Errorf("%w; the new stream %q cannot be registered until then", readOnly, name)
			}
			maxNo++
			out[name] = maxNo
			if err := txn.Set(streamNoKey(name), u64(maxNo)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open database: stream numbers: %w", err)
	}
	return out, nil
}

// routing is the node's compiled routing and retention settings.
type routing struct {
	router *expiry.Router
	ids    map[string]event.StreamID           // by stream name, "default" included
	rules  map[event.StreamID]expiry.Retention // own streams with a rule
}

// setupRouting validates cfg's routes and streams and numbers the streams.
func (n *Store) setupRouting(cfg Config) error {
	ec := expiry.Config{Routes: cfg.Routes, Streams: cfg.Streams}
	router, err := expiry.NewRouter(ec)
	if err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	nums, err := assignStreamNumbers(n.st.db, ec.Names(), n.st.readOnly)
	if err != nil {
		return err
	}
	r := &routing{router: router, ids: map[string]event.StreamID{expiry.DefaultStream: n.stream0}, rules: map[event.StreamID]expiry.Retention{}}
	for name, no := range nums {
		r.ids[name] = event.NewStreamID(n.nodeID, no)
	}
	for name, rule := range cfg.Streams {
		if !rule.Forever() {
			r.rules[r.ids[name]] = rule
		}
	}
	n.routing = r
	for name, rule := range cfg.Streams {
		n.log.Info("stream", slog.String("name", name), slog.String("id", string(r.ids[name])), slog.String("retention", rule.String()))
	}
	return nil
}

// StreamIDs returns the ID of every named stream, "default" (stream 0)
// included.
func (n *Store) StreamIDs() map[string]event.StreamID { return maps.Clone(n.routing.ids) }

// route assigns req's drafts to streams by the routing rules.
func (n *Store) route(req *writeReq) {
	req.stream = n.stream0
	if n.routing.router.Empty() {
		return
	}
	now := n.w.now().UnixMicro()
	for i := range req.drafts {
		name := n.routing.router.Route(&aql.Subject{Tags: req.tags[i], AppID: req.appID, Timestamp: now, Local: true})
		s := n.routing.ids[name]
		if i == 0 {
			req.stream = s
			continue
		}
		if req.streams == nil && s != req.stream {
			req.streams = make([]event.StreamID, len(req.drafts))
			for j := range i {
				req.streams[j] = req.stream
			}
		}
		if req.streams != nil {
			req.streams[i] = s
		}
	}
}

// ruleOf returns the retention that applies to stream: the node's settings
// for its own streams, the origin's announced rule for others.
func (n *Store) ruleOf(stream event.StreamID, e streamExp) (expiry.Retention, bool) {
	if stream.Node() == n.nodeID {
		r, ok := n.routing.rules[stream]
		return r, ok
	}
	return e.rule, e.hasRule && !e.rule.Forever()
}
