package lease

import (
	"context"
	"testing"
)

// BenchmarkScanPricing prices a 10,000-lease table (1.3 KB items, 10
// workers) as every scan does (stretch, sizing the scan's items once, as
// its targeted reads then reuse: itemSizes) against the scan itself on a
// MemoryStore (List, the floor: a DynamoDB Scan also unmarshals every
// item), and against the later targeted reads' pricing, which reuses the
// scan's sizes (itemSizes again: nothing to compute).
func BenchmarkScanPricing(b *testing.B) {
	s := NewMemoryStore()
	fillMidStream(&testing.T{}, s, 10000, 1024)
	all, err := s.List(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewCoordinator(s, Config{WorkerID: "w"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("List", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.List(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stretch", func(b *testing.B) {
		for b.Loop() {
			c.stretch(&scanSnapshot{leases: all}, 10)
		}
	})
	b.Run("itemSizesAfterStretch", func(b *testing.B) {
		sn := &scanSnapshot{leases: all}
		c.stretch(sn, 10)
		for b.Loop() {
			sn.itemSizes()
		}
	})
}
