package replicate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// On a pull stream every message is a uvarint length followed by that many
// bytes of CBOR. A length over the reader's maximum is an error before
// anything is allocated.

// maxRequestBytes bounds an encoded PullRequest.
const maxRequestBytes = 512

// ByteReader is what the frame readers read from; bufio.Reader is one.
type ByteReader interface {
	io.Reader
	io.ByteReader
}

// msgBufs holds buffers for writeMsg, which encodes a message after room
// for its length prefix and writes both with one Write.
var msgBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func writeMsg(w io.Writer, v any) error {
	buf := msgBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 4<<20 {
			msgBufs.Put(buf)
		}
	}()
	buf.Reset()
	var prefix [binary.MaxVarintLen64]byte
	buf.Write(prefix[:])
	if err := wireEnc.MarshalToBuffer(v, buf); err != nil {
		return err
	}
	b := buf.Bytes()
	start := len(prefix) - binary.PutUvarint(prefix[:], uint64(len(b)-len(prefix)))
	copy(b[start:], prefix[:len(prefix)-start])
	_, err := w.Write(b[start:])
	return err
}

// readMsg reads one length-prefixed message of at most max bytes. A clean
// end of input before the length returns io.EOF. Only what was read can be
// malformed: an error of the reader (a stream reset by a peer that
// stopped) is returned as it is, a failed transfer, not misbehaviour.
func readMsg(r ByteReader, max int) ([]byte, error) {
	return readMsgInto(r, max, nil)
}

// readMsgInto is readMsg reading into buf if it is large enough.
func readMsgInto(r ByteReader, max int, buf []byte) ([]byte, error) {
	n, err := readUvarint(r)
	if err != nil {
		if errors.Is(err, errVarintOverflow) {
			return nil, fmt.Errorf("%w: length prefix: %v", chain.ErrMalformed, err)
		}
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: message of %d bytes, limit %d", chain.ErrMalformed, n, max)
	}
	b := buf[:0]
	if uint64(cap(b)) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// WriteRequest writes req to a pull stream.
func WriteRequest(w io.Writer, req PullRequest) error {
	if err := writeMsg(w, wireRequest{Stream: string(req.Stream), From: req.From, To: req.To}); err != nil {
		return fmt.Errorf("write pull request: %w", err)
	}
	return nil
}

// ReadRequest reads a pull request and checks its form. Errors from
// malformed input wrap ErrMalformed.
func ReadRequest(r ByteReader) (PullRequest, error) {
	b, err := readMsg(r, maxRequestBytes)
	if err != nil {
		return PullRequest{}, fmt.Errorf("read pull request: %w", err)
	}
	var w wireRequest
	if err := wireDec.Unmarshal(b, &w); err != nil {
		return PullRequest{}, fmt.Errorf("%w: pull request: %v", chain.ErrMalformed, err)
	}
	req := PullRequest{Stream: event.StreamID(w.Stream), From: w.From, To: w.To}
	switch {
	case !req.Stream.Valid():
		return PullRequest{}, fmt.Errorf("%w: pull request: invalid stream id %q", chain.ErrMalformed, w.Stream)
	case req.From < -1 || (req.From >= 0 && uint64(req.From) >= req.To):
		return PullRequest{}, fmt.Errorf("%w: pull request: empty range (%d, %d]", chain.ErrMalformed, req.From, req.To)
	}
	return req, nil
}

// WriteFrame writes f, whose events belong to one stream, to a pull stream.
func WriteFrame(w io.Writer, f Frame) error {
	wf := wireFrame{Events: toWireEvents(f.Events), End: f.End, Error: f.Error, Floor: toWireFloor(f.Floor)}
	if len(f.Blocks) > 0 {
		wf.Blocks = make([]wireBlock, len(f.Blocks))
		for i, b := range f.Blocks {
			wf.Blocks[i] = wireBlock{First: b.First, Data: b.Data}
		}
	}
	if f.Head != nil {
		h := toWireHead(*f.Head)
		wf.Head = &h
	}
	if err := writeMsg(w, wf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadFrame reads one frame of an answer about stream, at most maxBytes
// long, and fills in the events' stream. It checks form only: the caller
// verifies events and heads. Errors from malformed input wrap ErrMalformed;
// a stream that ends before a frame is complete gives io.ErrUnexpectedEOF,
// one that ends between frames io.EOF.
func ReadFrame(r ByteReader, stream event.StreamID, maxBytes int) (Frame, error) {
	return readFrame(r, stream, maxBytes, nil)
}

// readFrame is ReadFrame reading the message into *buf, which it keeps
// for the next call; the frame does not alias it (decoding copies).
func readFrame(r ByteReader, stream event.StreamID, maxBytes int, buf *[]byte) (Frame, error) {
	var into []byte
	if buf != nil {
		into = *buf
	}
	b, err := readMsgInto(r, maxBytes, into)
	if buf != nil && cap(b) > cap(*buf) {
		*buf = b
	}
	if err != nil {
		return Frame{}, fmt.Errorf("read frame: %w", err)
	}
	var w wireFrame
	if err := wireDec.Unmarshal(b, &w); err != nil {
		return Frame{}, fmt.Errorf("%w: frame: %v", chain.ErrMalformed, err)
	}
	f := Frame{Events: fromWireEvents(stream, w.Events), End: w.End, Error: w.Error}
	switch {
	case len(w.Blocks) > 0 && len(w.Events) > 0:
		return Frame{}, fmt.Errorf("%w: frame with both events and blocks", chain.ErrMalformed)
	case len(w.Blocks) > 0:
		f.Blocks = make([]chain.Block, len(w.Blocks))
		for i, b := range w.Blocks {
			if len(b.Data) == 0 {
				return Frame{}, fmt.Errorf("%w: frame: empty block at %d", chain.ErrMalformed, b.First)
			}
			f.Blocks[i] = chain.Block{First: b.First, Data: b.Data}
		}
	}
	if w.Head != nil {
		h, err := fromWireHead(w.Head)
		if err != nil {
			return Frame{}, err
		}
		f.Head = &h
	}
	if f.Floor, err = fromWireFloor(stream, w.Floor); err != nil {
		return Frame{}, err
	}
	if w.Error != "" && !w.End {
		return Frame{}, fmt.Errorf("%w: frame: error without end", chain.ErrMalformed)
	}
	if len(w.Error) > 1024 {
		f.Error = w.Error[:1024]
	}
	return f, nil
}

var errVarintOverflow = errors.New("varint overflows 64 bits")

// readUvarint is binary.ReadUvarint, except that it tells a malformed
// varint (errVarintOverflow) from an error of r, which it returns as it is
// (io.ErrUnexpectedEOF for an end of input after the first byte).
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, errVarintOverflow
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, errVarintOverflow
}
