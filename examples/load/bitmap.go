package main

import (
	"math/bits"
	"sync/atomic"
)

// idBitmap is a concurrent set of record ids in [0, maxIDs), allocated in
// 512 KiB segments as ids are used, so an unbounded (-duration only) run
// needs no up-front size.
const (
	segmentIDs = 1 << 22
	segments   = 1024
	maxIDs     = segmentIDs * segments
)

type segment [segmentIDs / 64]atomic.Uint64

type idBitmap struct {
	segs [segments]atomic.Pointer[segment]
}

func (b *idBitmap) segment(i uint64, create bool) *segment {
	s := b.segs[i].Load()
	if s == nil && create {
		s = new(segment)
		if !b.segs[i].CompareAndSwap(nil, s) {
			s = b.segs[i].Load()
		}
	}
	return s
}

// add inserts id and reports whether it was absent.
func (b *idBitmap) add(id uint64) bool {
	s := b.segment(id/segmentIDs, true)
	off := id % segmentIDs
	mask := uint64(1) << (off % 64)
	return s[off/64].Or(mask)&mask == 0
}

func (b *idBitmap) has(id uint64) bool {
	s := b.segment(id/segmentIDs, false)
	if s == nil {
		return false
	}
	off := id % segmentIDs
	return s[off/64].Load()&(1<<(off%64)) != 0
}

// countMissing returns how many ids of b are not in other.
func (b *idBitmap) countMissing(other *idBitmap) int64 {
	var n int64
	for i := range b.segs {
		s := b.segs[i].Load()
		if s == nil {
			continue
		}
		o := other.segs[i].Load()
		for w := range s {
			v := s[w].Load()
			if o != nil {
				v &^= o[w].Load()
			}
			n += int64(bits.OnesCount64(v))
		}
	}
	return n
}
