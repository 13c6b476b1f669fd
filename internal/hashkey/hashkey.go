package hashkey

import (
	"crypto/md5"
	"encoding/binary"
	"math/bits"
)

// Key is a 128-bit hash key as high and low 64-bit words.
type Key struct{ Hi, Lo uint64 }

// Less reports whether k < o.
func (k Key) Less(o Key) bool { return k.Hi < o.Hi || (k.Hi == o.Hi && k.Lo < o.Lo) }

// Parse parses a decimal integer in [0, 2^128). Leading zeros are
// accepted (Kinesis refuses them in an explicit hash key: that check is
// the producer's).
func Parse(s string) (Key, bool) {
	if s == "" {
		return Key{}, false
	}
	var hi, lo uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Key{}, false
		}
		// (hi, lo) = (hi, lo)*10 + d, failing on overflow.
		h1, l := bits.Mul64(lo, 10)
		h2, h := bits.Mul64(hi, 10)
		if h2 != 0 {
			return Key{}, false
		}
		h, carry := bits.Add64(h, h1, 0)
		if carry != 0 {
			return Key{}, false
		}
		l, carry = bits.Add64(l, uint64(c-'0'), 0)
		h, carry = bits.Add64(h, 0, carry)
		if carry != 0 {
			return Key{}, false
		}
		hi, lo = h, l
	}
	return Key{hi, lo}, true
}

// Of returns the hash key of a partition key: its MD5, big-endian.
func Of(partitionKey string) Key {
	var sum [md5.Size]byte
	if len(partitionKey) <= 64 {
		// A stack copy keeps the []byte conversion from allocating.
		var buf [64]byte
		n := copy(buf[:], partitionKey)
		sum = md5.Sum(buf[:n])
	} else {
		sum = md5.Sum([]byte(partitionKey))
	}
	return Key{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}
