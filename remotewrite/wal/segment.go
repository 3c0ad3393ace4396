package wal

import "sort"

// blockMeta is what the queue remembers of a block on disk: enough to count
// drops exactly without reading the segment again.
type blockMeta struct {
	seq     uint64
	samples int
	minTs   int64 // oldest sample (ms), for the age of the oldest pending block
}

// segment is the in-memory index of one segment file. blocks only grows by
// append and its elements are never modified, so a reader may use a slice
// header copied under the queue lock without holding it.
type segment struct {
	index    int
	size     int64 // bytes on disk (active: bytes written so far)
	closed   bool  // no more writes; size is final
	blocks   []blockMeta
	reported bool // corruption already counted and logged
}

func (s *segment) lastSeq() uint64 {
	if len(s.blocks) == 0 {
		return 0
	}
	return s.blocks[len(s.blocks)-1].seq
}

// firstAfter returns the position of the first block with seq > after.
func firstAfter(blocks []blockMeta, after uint64) int {
	return sort.Search(len(blocks), func(i int) bool { return blocks[i].seq > after })
}

func hasSeq(blocks []blockMeta, seq uint64) bool {
	i := firstAfter(blocks, seq-1)
	return i < len(blocks) && blocks[i].seq == seq
}
