package wal

import "sort"

// blockMeta is what the queue remembers of a block on disk: enough to count
// drops exactly without reading the segment again.
type blockMeta struct {
	seq     uint64
	samples int
	minTs   int64 // oldest sample (ms), for the age of the oldest pending block
}

// part is one stream's blocks in a segment, ascending seq.
type part struct {
	st     *Stream
	blocks []blockMeta
}

// segment is the in-memory index of one segment file: its blocks split by
// stream (tenant), so that each reader walks only its own. A part's blocks
// only grow by append and are never modified, so a reader may use a slice
// header copied under the queue lock without holding it.
type segment struct {
	index    int
	size     int64 // bytes on disk (active: bytes written so far)
	closed   bool  // no more writes; size is final
	parts    []part
	reported bool // corruption already counted and logged
}

// blocksOf is st's blocks in s (nil: none).
func (s *segment) blocksOf(st *Stream) []blockMeta {
	for i := range s.parts {
		if s.parts[i].st == st {
			return s.parts[i].blocks
		}
	}
	return nil
}

// add indexes b as st's, after st's earlier blocks in s.
func (s *segment) add(st *Stream, b blockMeta) {
	for i := range s.parts {
		if s.parts[i].st == st {
			s.parts[i].blocks = append(s.parts[i].blocks, b)
			return
		}
	}
	s.parts = append(s.parts, part{st: st, blocks: []blockMeta{b}})
	st.segRefs++
}

// empty reports whether s indexes no block.
func (s *segment) empty() bool { return len(s.parts) == 0 }

// count is the number of blocks indexed in s.
func (s *segment) count() int {
	n := 0
	for _, p := range s.parts {
		n += len(p.blocks)
	}
	return n
}

// lastSeq is the highest seq indexed in s (0: none).
func (s *segment) lastSeq() uint64 {
	var last uint64
	for _, p := range s.parts {
		last = max(last, p.blocks[len(p.blocks)-1].seq)
	}
	return last
}

// firstAfter returns the position of the first block with seq > after.
func firstAfter(blocks []blockMeta, after uint64) int {
	return sort.Search(len(blocks), func(i int) bool { return blocks[i].seq > after })
}

func hasSeq(blocks []blockMeta, seq uint64) bool {
	i := firstAfter(blocks, seq-1)
	return i < len(blocks) && blocks[i].seq == seq
}

func lastOf(blocks []blockMeta) uint64 {
	if len(blocks) == 0 {
		return 0
	}
	return blocks[len(blocks)-1].seq
}
