package aggregation

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
)

// Generators for property tests, shared with the integration test.

// unicodeRunes mixes one- to four-byte UTF-8 runes, including emoji (which
// are surrogate pairs in JavaScript).
var unicodeRunes = []rune("aZ09-_/.:é߷ßПЖ中文字日本語한국어😀🚀𝄞✓€\u00a0\u200b")

func randASCIIKey(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/"
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func randUnicodeKey(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteRune(unicodeRunes[r.IntN(len(unicodeRunes))])
	}
	return b.String()
}

// randHashKey returns a decimal 128-bit unsigned integer.
func randHashKey(r *rand.Rand) string {
	hi, lo := r.Uint64(), r.Uint64()
	switch r.IntN(4) {
	case 0:
		return "0"
	case 1:
		return "340282366920938463463374607431768211455" // 2^128-1
	}
	v := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
	return v.Or(v, new(big.Int).SetUint64(lo)).String()
}

func randData(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// shape describes one kind of record set for property tests.
type shape struct {
	name      string
	count     int  // number of records
	keyPool   int  // 0: every record gets a fresh key; else keys drawn from a pool this big
	unicode   bool // unicode keys
	ehk       int  // 0: none; 1: every record; 2: about half
	dataLen   int  // maximum data length (uniform 0..dataLen); -1: always empty
	fixedData bool // exactly dataLen bytes
}

var shapes = []shape{
	{name: "one record", count: 1, dataLen: 100},
	{name: "one record empty data", count: 1, dataLen: -1},
	{name: "one record with ehk", count: 1, ehk: 1, dataLen: 50},
	{name: "many distinct keys", count: 500, dataLen: 200},
	{name: "many shared keys", count: 500, keyPool: 7, dataLen: 200},
	{name: "unicode keys", count: 200, unicode: true, dataLen: 64},
	{name: "unicode shared keys with ehk", count: 200, keyPool: 5, unicode: true, ehk: 1, dataLen: 64},
	{name: "mixed ehk", count: 300, keyPool: 40, ehk: 2, dataLen: 300},
	{name: "all empty data", count: 100, keyPool: 3, ehk: 2, dataLen: -1},
	{name: "large data", count: 2, dataLen: 1 << 20, fixedData: true},
	{name: "large data with small", count: 5, keyPool: 2, ehk: 2, dataLen: 300 << 10},
	{name: "wide tables", count: 20000, dataLen: 3}, // 3-byte index varints
}

// genRecords builds a random record set of the given shape. Keys are never
// empty (Kinesis requires at least one character).
func genRecords(r *rand.Rand, s shape) []Record {
	key := func() string {
		n := 1 + r.IntN(32)
		if s.unicode {
			return randUnicodeKey(r, n)
		}
		return randASCIIKey(r, n)
	}
	var pool, ehkPool []string
	for range s.keyPool {
		pool = append(pool, key())
		ehkPool = append(ehkPool, randHashKey(r))
	}
	recs := make([]Record, s.count)
	for i := range recs {
		rec := &recs[i]
		if s.keyPool > 0 {
			rec.PartitionKey = pool[r.IntN(len(pool))]
		} else {
			rec.PartitionKey = key()
		}
		if s.ehk == 1 || (s.ehk == 2 && r.IntN(2) == 0) {
			if s.keyPool > 0 {
				rec.ExplicitHashKey = ehkPool[r.IntN(len(ehkPool))]
			} else {
				rec.ExplicitHashKey = randHashKey(r)
			}
		}
		switch {
		case s.dataLen < 0:
			rec.Data = []byte{}
		case s.fixedData:
			rec.Data = randData(r, s.dataLen)
		default:
			rec.Data = randData(r, r.IntN(s.dataLen+1))
		}
	}
	return recs
}

func (s shape) String() string { return fmt.Sprintf("%s(%d)", s.name, s.count) }

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }
