package node

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// setFormat writes a layout version into a closed node's database.
func setFormat(t *testing.T, dir string, v uint64) {
	t.Helper()
	// Small value-log files, as the node uses on 32-bit builds: Badger
	// maps twice their size, and its default of 1 GiB leaves no room in a
	// 32-bit address space for the node opened next.
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithCompression(options.Snappy).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(v)) }); err != nil {
		t.Fatal(err)
	}
}

func getFormat(t *testing.T, n *Node) uint64 {
	t.Helper()
	var v uint64
	err := n.st.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFormat)
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error { v = binary.BigEndian.Uint64(b); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLayoutVersion: a new database gets the current layout, databases of
// versions 3 and 1 are upgraded in place with their events (records into
// blocks, the tag index written again), and a database of an unknown
// (newer) layout is refused with a clear error.
func TestLayoutVersion(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v := getFormat(t, n); v != formatCurrent {
		t.Fatalf("new database: layout %d, want %d", v, formatCurrent)
	}
	publish(t, n, "kept")
	n.Close()

	for _, old := range []uint64{formatV3, formatV1} {
		setFormat(t, dir, old)
		n, err = Open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("opening a version %d database: %v", old, err)
		}
		if v := getFormat(t, n); v != formatCurrent {
			t.Errorf("version %d database not upgraded: layout %d", old, v)
		}
		if o, _ := n.Offsets(context.Background()); o.Present[n.DefaultStream()] != 0 {
			t.Errorf("after the upgrade from version %d the node holds %v, want its one event", old, o.Present)
		}
		if evs := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'kept'")}); len(evs) != 1 {
			t.Errorf("after the upgrade from version %d the tag index finds %d events, want 1", old, len(evs))
		}
		n.Close()
	}

	setFormat(t, dir, formatCurrent+1)
	if n, err = Open(context.Background(), cfg); err == nil {
		n.Close()
		t.Fatal("a database of a newer layout opened")
	} else if !strings.Contains(err.Error(), "not supported") {
		t.Errorf("error %q does not say the layout is not supported", err)
	}
}
