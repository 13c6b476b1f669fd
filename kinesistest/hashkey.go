package kinesistest

import (
	"crypto/md5"
	"encoding/binary"
	"math/big"
	"math/bits"
)

// u128 is an unsigned 128-bit hash key. Kinesis maps every record to a point
// in [0, 2^128-1] and every shard owns an inclusive range of that space.
type u128 struct{ hi, lo uint64 }

var maxU128 = u128{^uint64(0), ^uint64(0)}

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) add(b u128) (u128, bool) {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, c2 := bits.Add64(a.hi, b.hi, c)
	return u128{hi, lo}, c2 != 0
}

func (a u128) sub(b u128) u128 {
	lo, br := bits.Sub64(a.lo, b.lo, 0)
	hi, _ := bits.Sub64(a.hi, b.hi, br)
	return u128{hi, lo}
}

func (a u128) big() *big.Int {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return new(big.Int).SetBytes(b[:])
}

func (a u128) String() string { return a.big().String() }

func u128FromBig(b *big.Int) u128 {
	var buf [16]byte
	b.FillBytes(buf[:])
	return u128{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}
}

// parseHashKey parses a decimal hash key. It reports whether s is a decimal
// integer (the service's pattern 0|([1-9]\d{0,38})) and, separately,
// whether it lies in [0, 2^128).
func parseHashKey(s string) (k u128, wellFormed, inRange bool) {
	if !isDecimal(s, 39) {
		return u128{}, false, false
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return u128{}, false, false
	}
	if b.BitLen() > 128 {
		return u128{}, true, false
	}
	return u128FromBig(b), true, true
}

// isDecimal reports whether s matches 0|([1-9]\d{0,max-1}).
func isDecimal(s string, max int) bool {
	if s == "" || len(s) > max || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// partitionKeyHash is the MD5 of the partition key read as a big-endian
// 128-bit unsigned integer, exactly as Kinesis routes records.
func partitionKeyHash(pk string) u128 {
	sum := md5.Sum([]byte(pk))
	return u128{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// evenRanges splits [lo, hi] into n contiguous ranges the way CreateStream
// does: each of size floor(span/n), the last one taking the remainder.
func evenRanges(lo, hi u128, n int) [][2]u128 {
	span := new(big.Int).Sub(hi.big(), lo.big())
	span.Add(span, big.NewInt(1))
	size := new(big.Int).Div(span, big.NewInt(int64(n)))
	out := make([][2]u128, n)
	start := lo.big()
	for i := 0; i < n; i++ {
		end := new(big.Int).Add(start, size)
		end.Sub(end, big.NewInt(1))
		if i == n-1 {
			end = hi.big()
		}
		out[i] = [2]u128{u128FromBig(start), u128FromBig(end)}
		start = new(big.Int).Add(end, big.NewInt(1))
	}
	return out
}
