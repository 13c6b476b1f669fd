package lease

import (
	"context"
	"testing"
)

// BenchmarkReview4ScanPricing prices a 10,000-lease table (1.3 KB items,
// 10 workers) as every scan does (stretch: tableReadUnits marshals every
// lease) against the scan itself on a MemoryStore (List, the floor: a
// DynamoDB Scan also unmarshals every item) and against the second
// marshal of the same leases by the first probe after the scan
// (scanSnapshot.itemSizes, which does not reuse stretch's sizes).
func BenchmarkReview4ScanPricing(b *testing.B) {
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
			c.stretch(all, 10)
		}
	})
	b.Run("itemSizes", func(b *testing.B) {
		for b.Loop() {
			sn := &scanSnapshot{leases: all}
			sn.itemSizes()
		}
	})
}
