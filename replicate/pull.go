package replicate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// The pull protocol, independent of the transport: the requester writes a
// PullRequest, the responder answers with frames (see Frame). Both sides
// close the connection when ctx ends, which unblocks their reads and writes.

// closeOnDone closes c (if it is an io.Closer) when ctx ends; the returned
// func stops that.
func closeOnDone(ctx context.Context, c any) func() bool {
	cl, ok := c.(io.Closer)
	if !ok {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() { cl.Close() })
}

// Serve answers one pull request read from conn with events of st: every
// event held in (From, To], continued beyond To up to the next signed head
// if To is not at one, in frames of about lim.FrameFillBytes, each carrying
// the latest checkpoint it passed; then an end frame. A request for events
// not held is answered with what is held (possibly nothing) and the head
// there; the requester finds the answer short.
func Serve(ctx context.Context, st Store, conn io.ReadWriter, lim Limits) (PullRequest, error) {
	return serve(ctx, st.ReadRange, conn, lim)
}

// ServeBlocks answers like Serve, with the events in the store's record
// blocks (PullBlocksProtocol).
func ServeBlocks(ctx context.Context, st Store, conn io.ReadWriter, lim Limits) (PullRequest, error) {
	return serve(ctx, st.ReadBlocks, conn, lim)
}

// readFunc is Store.ReadRange or Store.ReadBlocks.
type readFunc func(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error]

func serve(ctx context.Context, read readFunc, conn io.ReadWriter, lim Limits) (PullRequest, error) {
	lim = lim.WithDefaults()
	defer closeOnDone(ctx, conn)()
	req, err := ReadRequest(bufio.NewReaderSize(conn, maxRequestBytes))
	if err != nil {
		return req, fmt.Errorf("serve pull: %w", err)
	}
	w := conn
	var (
		f        Frame
		size     int
		lastHead *chain.SignedHead
		floor    *chain.Head
		last     = req.From
	)
	var data []byte // the frame's blocks' bytes
	flush := func(end bool) error {
		f.End = end
		if err := WriteFrame(w, f); err != nil {
			return err
		}
		f, size, data = Frame{}, 0, data[:0]
		return nil
	}
	// Read (From, To]; if that does not end at a checkpoint, read on to one.
	to := req.To
	for pass := 0; pass < 2; pass++ {
		for en, err := range read(ctx, req.Stream, last, to) {
			if err != nil {
				return req, errors.Join(fmt.Errorf("serve pull %s: %w", req.Stream, err), endWithError(w, "read failed"))
			}
			if en.Floor != nil {
				// Expired below: answer from the floor (expiry.go).
				if pass == 0 && len(f.Events) == 0 && int64(en.Floor.Offset) > last {
					f.Floor, floor, last = en.Floor, en.Floor, int64(en.Floor.Offset)
				}
				continue
			}
			if b := en.Block; b != nil {
				// The store may reuse b.Data: keep a copy, in one buffer
				// for the frame's blocks.
				start := len(data)
				data = append(data, b.Data...)
				f.Blocks = append(f.Blocks, chain.Block{First: b.First, Count: b.Count, Data: data[start:len(data):len(data)]})
				size += len(b.Data) + 16
				last = int64(b.Last())
			} else {
				f.Events = append(f.Events, en.Event)
				size += chain.EventSize(&en.Event)
				last = int64(en.Event.Offset)
			}
			if en.Head != nil {
				lastHead, f.Head = en.Head, en.Head
			}
			if size >= lim.FrameFillBytes {
				if err := flush(false); err != nil {
					return req, fmt.Errorf("serve pull %s: %w", req.Stream, err)
				}
			}
			if pass == 1 && en.Head != nil {
				break
			}
		}
		if last < 0 || (lastHead != nil && int64(lastHead.Offset) == last) || uint64(last) < to {
			break
		}
		to = math.MaxUint64
	}
	if floor != nil && lastHead == nil && int64(floor.Offset) == last {
		// Everything held expired: the floor is the whole answer.
		if err := flush(true); err != nil {
			return req, fmt.Errorf("serve pull %s: %w", req.Stream, err)
		}
		return req, nil
	}
	if lastHead == nil || int64(lastHead.Offset) != last {
		// The store broke its invariant (or holds nothing): drop the
		// unsigned tail rather than send what cannot be verified.
		return req, errors.Join(fmt.Errorf("serve pull %s: no signed head at offset %d", req.Stream, last), endWithError(w, "no signed head"))
	}
	f.Head = lastHead
	if err := flush(true); err != nil {
		return req, fmt.Errorf("serve pull %s: %w", req.Stream, err)
	}
	return req, nil
}

func endWithError(w io.Writer, msg string) error {
	return WriteFrame(w, Frame{End: true, Error: msg})
}

// Fetch runs the requesting side of one pull over conn: it sends req,
// verifies frames as they arrive, chaining from prev (the head held at
// req.From; ignored when From is -1), and queues each verified piece with
// st.IngestAsync as soon as a signed checkpoint covers it, calling progress
// (if not nil) with each offset stored. So an interrupted transfer keeps
// what was verified. The next frames are read and verified while queued
// pieces are stored; Fetch returns only after every queued piece is stored
// or failed. Frames in blocks (PullBlocksProtocol) are decoded by st, and
// a piece that arrived in whole blocks is queued with them. It returns the
// highest offset stored
// (req.From if none) and an error: ErrIntegrity-wrapped for data that
// fails verification, ErrShortAnswer if the answer ended below req.To.
func Fetch(ctx context.Context, st Store, conn io.ReadWriter, req PullRequest, prev chain.Head, lim Limits, progress func(offset uint64)) (int64, error) {
	lim = lim.WithDefaults()
	outer := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer closeOnDone(ctx, conn)()
	if req.From < 0 {
		prev = chain.Head{}
	}
	v := chain.NewVerifier(req.Stream, req.From, prev.Lamport, prev.Hash)
	// Verified ranges are stored while the next frames arrive
	// (pipeline.go); a failed range cancels ctx, which ends the read in
	// progress.
	pipe := newIngestPipe(st, req.From, progress, cancel)
	fail := func(err error) (int64, error) {
		have, perr := pipe.close()
		if perr != nil && !errors.Is(err, perr) {
			if err != nil {
				err = errors.Join(err, fmt.Errorf("store: %w", perr))
			} else {
				err = fmt.Errorf("store: %w", perr)
			}
		}
		if outer.Err() != nil {
			err = errors.Join(outer.Err(), err)
		}
		return have, fmt.Errorf("pull %s (%d, %d]: %w", req.Stream, req.From, req.To, err)
	}
	if err := WriteRequest(conn, req); err != nil {
		return fail(err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	var decoded []event.Event
	var msg []byte // each frame's bytes, one buffer for all
	// waiting holds the blocks whose events wait for a signed head.
	var waiting []chain.Block
	for {
		f, err := readFrame(r, req.Stream, lim.MaxFrameBytes, &msg)
		if err != nil {
			if ctx.Err() != nil && outer.Err() == nil {
				// A range failed to store and the pipe cancelled ctx,
				// which closed conn under this read: the store's error
				// (fail adds it) is the cause, not the peer.
				return fail(nil)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: %v", ErrShortAnswer, err)
			}
			return fail(err)
		}
		if f.Floor != nil {
			// The peer's events below the floor expired: verify from its
			// head there, after the store moved up to it (expiry.go).
			have, _, _ := v.Tip()
			if n, _ := v.Pending(); n > 0 || f.Floor.Stream != req.Stream {
				return fail(fmt.Errorf("%w: floor after events", chain.ErrMalformed))
			}
			if int64(f.Floor.Offset) > have {
				if err := pipe.drain(); err != nil {
					return fail(fmt.Errorf("store: %w", err))
				}
				if err := st.SkipTo(ctx, *f.Floor); err != nil {
					return fail(fmt.Errorf("store: %w", err))
				}
				pipe.skipped(f.Floor.Offset)
				v = chain.NewVerifier(req.Stream, int64(f.Floor.Offset), f.Floor.Lamport, f.Floor.Hash)
				if progress != nil {
					progress(f.Floor.Offset)
				}
			}
		}
		events := f.Events
		if len(f.Blocks) > 0 {
			// The Verifier copies events, so one buffer serves every frame.
			_, pending := v.Pending()
			if decoded, err = decodeBlocks(decoded[:0], st, req.Stream, f.Blocks, lim.MaxUnverifiedBytes-pending); err != nil {
				return fail(err)
			}
			events = decoded
			waiting = append(waiting, f.Blocks...)
		}
		if err := v.Add(events); err != nil {
			return fail(err)
		}
		if _, b := v.Pending(); b > lim.MaxUnverifiedBytes {
			return fail(chain.ErrTooMuchUnverified)
		}
		if f.Head != nil {
			evs, err := v.Checkpoint(*f.Head)
			if err != nil {
				return fail(err)
			}
			var blocks []chain.Block
			if len(evs) > 0 {
				blocks, waiting = takeBlocks(waiting, evs)
			}
			if len(evs) > 0 {
				if err := pipe.put(ctx, evs, blocks, *f.Head); err != nil {
					return fail(fmt.Errorf("store: %w", err))
				}
			}
		}
		if !f.End {
			continue
		}
		have, _, _ := v.Tip()
		switch n, _ := v.Pending(); {
		case f.Error != "":
			return fail(fmt.Errorf("%w: peer: %s", ErrShortAnswer, f.Error))
		case n > 0:
			return fail(fmt.Errorf("%w: %d events after the last signed head", chain.ErrGap, n))
		case have < 0 || uint64(have) < req.To:
			return fail(fmt.Errorf("%w: answer ends at %d", ErrShortAnswer, have))
		}
		stored, err := pipe.close()
		if err != nil {
			return stored, fmt.Errorf("pull %s (%d, %d]: store: %w", req.Stream, req.From, req.To, err)
		}
		return stored, nil
	}
}

// takeBlocks removes from pending the blocks up to the last of events and
// returns them if they hold exactly events, else nil.
func takeBlocks(pending []chain.Block, events []event.Event) (blocks, rest []chain.Block) {
	first, last := events[0].Offset, events[len(events)-1].Offset
	n := 0
	for n < len(pending) && pending[n].Last() <= last {
		n++
	}
	blocks, rest = pending[:n:n], pending[n:]
	next := first
	for _, b := range blocks {
		if b.First != next {
			return nil, rest
		}
		next = b.Last() + 1
	}
	if next != last+1 {
		return nil, rest
	}
	return blocks, rest
}

// decodeBlocks appends to dst the events of a frame's blocks, decoded by
// st, into at most budget bytes of events.
func decodeBlocks(dst []event.Event, st Store, stream event.StreamID, blocks []chain.Block, budget int) ([]event.Event, error) {
	for i, b := range blocks {
		n := len(dst)
		var err error
		if dst, err = st.DecodeBlock(dst, stream, b, budget); err != nil {
			return dst, fmt.Errorf("block at %d: %w", b.First, err)
		}
		blocks[i].Count = len(dst) - n
		for j := n; j < len(dst); j++ {
			budget -= chain.EventSize(&dst[j])
		}
	}
	return dst, nil
}

// FreshRange verifies events that rode along in gossip against the head
// held here (prev at offset have) and returns them ready for Ingest,
// or nil if they start above have+1 (a pull must fill the gap first) or
// hold nothing new. checkSig checks f.Head's signature: VerifyHead, or a
// cache in front of it, as the gossip validator has just verified the
// same head.
func FreshRange(prev chain.Head, have int64, f FreshEvents, checkSig func(chain.SignedHead) error) ([]event.Event, error) {
	evs := f.Events
	if len(evs) == 0 || int64(f.Head.Offset) <= have {
		return nil, nil
	}
	first := evs[0].Offset
	if first > uint64(have+1) {
		return nil, nil
	}
	// Skip what is already here.
	skip := uint64(have+1) - first
	if skip >= uint64(len(evs)) {
		return nil, nil
	}
	evs = evs[skip:]
	if have < 0 {
		prev = chain.Head{}
	}
	if err := chain.VerifyRangeWith(prev.Hash, have, evs, f.Head, checkSig); err != nil {
		return nil, err
	}
	return evs, nil
}
