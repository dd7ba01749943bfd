package lamport

import (
	"container/heap"
	"iter"
)

// Merge combines sequences that are each sorted by key into one sorted
// sequence. With desc set, inputs and output are in descending order instead.
// Ties between inputs keep the order of the inputs, so Merge is stable.
//
// An input's error ends the merge: it is yielded once (with the zero T) and
// nothing follows. Inputs are pulled lazily, one element ahead each, and all
// are stopped when the consumer stops early.
func Merge[T any](key func(T) EventKey, desc bool, inputs ...iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		h := &mergeHeap[T]{key: key, desc: desc}
		stops := make([]func(), 0, len(inputs))
		defer func() {
			for _, stop := range stops {
				stop()
			}
		}()
		var zero T
		for i, in := range inputs {
			next, stop := iter.Pull2(in)
			stops = append(stops, stop)
			v, err, ok := next()
			if err != nil {
				yield(zero, err)
				return
			}
			if ok {
				h.items = append(h.items, mergeItem[T]{v: v, k: key(v), src: i, next: next})
			}
		}
		heap.Init(h)
		for h.Len() > 0 {
			top := &h.items[0]
			if !yield(top.v, nil) {
				return
			}
			v, err, ok := top.next()
			if err != nil {
				yield(zero, err)
				return
			}
			if ok {
				top.v, top.k = v, key(v)
				heap.Fix(h, 0)
			} else {
				heap.Pop(h)
			}
		}
	}
}

type mergeItem[T any] struct {
	v    T
	k    EventKey
	src  int
	next func() (T, error, bool)
}

type mergeHeap[T any] struct {
	items []mergeItem[T]
	key   func(T) EventKey
	desc  bool
}

func (h *mergeHeap[T]) Len() int { return len(h.items) }
func (h *mergeHeap[T]) Less(i, j int) bool {
	c := Compare(h.items[i].k, h.items[j].k)
	if h.desc {
		c = -c
	}
	if c != 0 {
		return c < 0
	}
	return h.items[i].src < h.items[j].src
}
func (h *mergeHeap[T]) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap[T]) Push(x any)    { h.items = append(h.items, x.(mergeItem[T])) }
func (h *mergeHeap[T]) Pop() any {
	old := h.items
	it := old[len(old)-1]
	h.items = old[:len(old)-1]
	return it
}
