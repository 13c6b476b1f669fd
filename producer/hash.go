package producer

import (
	"hash/maphash"
	"sync/atomic"
	"unicode/utf8"

	"github.com/shardflow/shardflow/internal/hashkey"
)

// hashKey returns the 128-bit hash key of a record as (high, low) words.
func hashKey(pk, ehk string) (hi, lo uint64, err error) {
	if ehk != "" {
		k, ok := hashkey.Parse(ehk)
		if !ok || (len(ehk) > 1 && ehk[0] == '0') { // Kinesis: 0|([1-9]\d{0,38})
			return 0, 0, invalid(ErrInvalidExplicitHashKey, "explicit hash key %.45q is not a decimal integer in [0, 2^128)", ehk)
		}
		return k.Hi, k.Lo, nil
	}
	k := hashkey.Of(pk)
	return k.Hi, k.Lo, nil
}

// parseHashKey parses a decimal integer in [0, 2^128).
func parseHashKey(s string) (hi, lo uint64, ok bool) {
	k, ok := hashkey.Parse(s)
	return k.Hi, k.Lo, ok
}

// checkRecord validates a record as Kinesis would and returns its hash key.
func checkRecord(pk, ehk string, dataLen int) (hi, lo uint64, err error) {
	switch {
	case pk == "":
		return 0, 0, ErrEmptyPartitionKey
	case len(pk) > MaxPartitionKeyLength && keyLength(pk) > MaxPartitionKeyLength:
		return 0, 0, invalid(ErrPartitionKeyTooLong, "partition key is %d UTF-16 code units, over %d", keyLength(pk), MaxPartitionKeyLength)
	case dataLen+len(pk) > MaxRecordSize:
		return 0, 0, tooLarge(pk, dataLen)
	case !utf8.ValidString(pk):
		// The SDK would send U+FFFD in place of the bad bytes, so Kinesis
		// would hash another key than the one predicted here.
		return 0, 0, invalid(ErrPartitionKeyNotUTF8, "partition key is not valid UTF-8 (bad byte at offset %d)", badUTF8(pk))
	}
	return hashKey(pk, ehk)
}

func tooLarge(pk string, dataLen int) error {
	return invalid(ErrRecordTooLarge, "record is %d bytes (data %d plus partition key %d), over %d",
		dataLen+len(pk), dataLen, len(pk), MaxRecordSize)
}

// badUTF8 returns the offset of pk's first byte that is not valid UTF-8.
func badUTF8(pk string) int {
	for i, r := range pk {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(pk[i:]); n <= 1 {
				return i
			}
		}
	}
	return len(pk)
}

// keyLength counts a partition key's characters the way Kinesis, a Java
// service, does: in UTF-16 code units, so a character outside the Basic
// Multilingual Plane (an emoji) counts twice. Counting code points instead
// would let through a key the service rejects, and one such key fails a
// whole PutRecords call of up to 500 records.
func keyLength(pk string) int {
	n := 0
	for _, r := range pk {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

func less128(ahi, alo, bhi, blo uint64) bool {
	return hashkey.Key{Hi: ahi, Lo: alo}.Less(hashkey.Key{Hi: bhi, Lo: blo})
}

// keyCache remembers the hash keys of recently seen partition keys, so a
// repeated key (a customer or device id) skips its MD5. It takes no lock:
// a 4-way set-associative table of keyCacheSets sets whose ways point to
// immutable entries, published and read atomically, each with a tag (bits
// of the key's maphash) so a look-up dereferences only an entry that
// probably matches. A key takes an empty way; it evicts another only on
// its second miss within a while (a filter of tags remembers first
// misses), so that a stream of keys that never repeat neither allocates
// nor evicts the keys that do. Keys longer
// than keyCacheMaxKey are not cached, which bounds what the cache keeps
// alive to about keyCacheSets x 4 x (keyCacheMaxKey + 48) bytes, 1.8 MB.
//
// A look-up that misses costs about a third of the MD5 it would have
// saved, so when keys rarely repeat the cache is bypassed: a sample of the
// keys (about 1 in keyCacheSampleEvery, picked by bits of a hash the
// record has anyway, so the same keys each time) is still looked up and
// counted, and every keyCacheWindow sampled look-ups the hit rate decides
// whether the others use the cache. Only sampled records write the
// counters, so the records in between share no written memory.
type keyCache struct {
	seed   maphash.Seed
	bypass atomic.Bool   // hit rate under keyCacheMinHits: only sampled keys look up
	_      [64]byte      // the counters' writes stay off seed and bypass's line
	stats  atomic.Uint64 // sampled look-ups in the window (high 32 bits) and their hits
	_      [56]byte
	sets   [keyCacheSets]keyCacheSet
	seen   [keyCacheSets * keyCacheWays]atomic.Uint32 // tags of keys missed once
}

const (
	keyCacheSets   = 4096 // 16,384 keys: 4,096 keys in use rarely overflow a set
	keyCacheWays   = 4
	keyCacheMaxKey = 64

	keyCacheSampleEvery = 32  // one key in this many is sampled (a power of 2)
	keyCacheWindow      = 128 // sampled look-ups per decision
	// keyCacheMinHits is the share of hits (of keyCacheWindow) under which
	// the cache is bypassed: a miss costs about 30 ns and a hit saves
	// about 90, so below a quarter of hits the look-ups cost more than
	// they save.
	keyCacheMinHits = keyCacheWindow / 4
)

// sampledSetBits are the set-index bits a sampled look-up clears (see
// check), leaving keyCacheSets/keyCacheSampleEvery sets.
const sampledSetBits = (keyCacheSets - 1) &^ (keyCacheSets/keyCacheSampleEvery - 1)

type keyCacheSet struct {
	tags [keyCacheWays]atomic.Uint32
	ents [keyCacheWays]atomic.Pointer[keyCacheEntry]
}

type keyCacheEntry struct {
	key    string
	hi, lo uint64
}

func newKeyCache() *keyCache { return &keyCache{seed: maphash.MakeSeed()} }

// check is checkRecord, with the MD5 of a cached partition key skipped.
func (c *keyCache) check(pk, ehk string, dataLen int) (hi, lo uint64, err error) {
	if ehk != "" || len(pk) > keyCacheMaxKey {
		return checkRecord(pk, ehk, dataLen)
	}
	if c.bypass.Load() {
		hi, lo, err = checkRecord(pk, ehk, dataLen)
		if err == nil && lo%keyCacheSampleEvery == 0 {
			// The sampled keys use only 1/keyCacheSampleEvery of the sets,
			// as their share of the keys would in the full cache: given
			// all of it, a key set too large for the cache (a million
			// device ids) fits when sampled, the hits measured are many
			// more than the look-ups would find, and the cache flips
			// between modes (a quarter of the records looked up, for
			// hardly a hit). Clearing set-index bits leaves the tag's,
			// the filter's and the way's bits as they are.
			h := maphash.String(c.seed, pk) &^ sampledSetBits
			_, _, hit := c.lookup(h, pk)
			if !hit {
				c.insert(h, pk, hi, lo)
			}
			c.count(hit)
		}
		return hi, lo, err
	}
	h := maphash.String(c.seed, pk)
	hi, lo, hit := c.lookup(h, pk)
	if (h>>12)%keyCacheSampleEvery == 0 {
		c.count(hit)
	}
	if hit {
		// A cached key was valid UTF-8 and short enough; only the
		// record's size is left to check.
		if dataLen+len(pk) > MaxRecordSize {
			return 0, 0, tooLarge(pk, dataLen)
		}
		return hi, lo, nil
	}
	hi, lo, err = checkRecord(pk, ehk, dataLen)
	if err != nil {
		return 0, 0, err
	}
	c.insert(h, pk, hi, lo)
	return hi, lo, nil
}

// count adds a sampled look-up to the window and, at its end, decides
// whether to bypass the cache. Racing windows may lose a count or a
// decision: the next window decides again.
func (c *keyCache) count(hit bool) {
	d := uint64(1) << 32
	if hit {
		d++
	}
	s := c.stats.Add(d)
	if s>>32 < keyCacheWindow {
		return
	}
	c.stats.Store(0)
	if bypass := uint32(s) < keyCacheMinHits; bypass != c.bypass.Load() {
		c.bypass.Store(bypass)
	}
}

// lookup returns pk's cached hash key, if the cache has it (h is pk's
// maphash).
func (c *keyCache) lookup(h uint64, pk string) (hi, lo uint64, ok bool) {
	set := &c.sets[h%keyCacheSets]
	tag := uint32(h>>32) | 1 // never 0, the tag of an empty way
	for i := range set.tags {
		if set.tags[i].Load() != tag {
			continue
		}
		if e := set.ents[i].Load(); e != nil && e.key == pk {
			return e.hi, e.lo, true
		}
	}
	return 0, 0, false
}

// insert caches pk's hash key after a miss: it fills an empty way, and
// replaces one (picked by the hash's other bits) only for a key missed
// before. Racing inserts may leave a tag beside another key's entry: a
// look-up compares the key, so that only costs a miss.
func (c *keyCache) insert(h uint64, pk string, hi, lo uint64) {
	set := &c.sets[h%keyCacheSets]
	tag := uint32(h>>32) | 1
	w := -1
	for i := range set.ents {
		if set.ents[i].Load() == nil {
			w = i
			break
		}
	}
	if w < 0 {
		seen := &c.seen[(h>>20)%uint64(len(c.seen))]
		if seen.Load() != tag {
			seen.Store(tag) // first miss: cache it if it comes again
			return
		}
		w = int(h>>16) % keyCacheWays
	}
	set.ents[w].Store(&keyCacheEntry{pk, hi, lo})
	set.tags[w].Store(tag)
}
