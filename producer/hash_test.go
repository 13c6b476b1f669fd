package producer

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
)

func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "", "-1", "00012", "1e3", "99999999999999999999999999999999999999999"} {
		f.Add(s)
	}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	f.Fuzz(func(t *testing.T, s string) {
		hi, lo, ok := parseHashKey(s)
		b, isNum := new(big.Int).SetString(s, 10)
		want := isNum && len(s) > 0 && s[0] != '-' && s[0] != '+' && b.Sign() >= 0 && b.Cmp(limit) < 0 && len(s) <= 39
		for _, c := range s {
			if c < '0' || c > '9' {
				want = false
			}
		}
		require.Equal(t, want, ok, "%q", s)
		if ok {
			got := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
			got.Or(got, new(big.Int).SetUint64(lo))
			require.Zero(t, got.Cmp(b), "%q", s)
		}
	})
}

func TestLookup(t *testing.T) {
	shards := []shardRange{
		{id: "a", startHi: 0, startLo: 0, endHi: 0, endLo: 99},
		{id: "b", startHi: 0, startLo: 100, endHi: 5, endLo: 0},
		{id: "c", startHi: 6, startLo: 0, endHi: ^uint64(0), endLo: ^uint64(0)},
	}
	cases := []struct {
		hi, lo uint64
		want   int
	}{{0, 0, 0}, {0, 99, 0}, {0, 100, 1}, {5, 0, 1}, {5, 1, -1}, {6, 0, 2}, {^uint64(0), ^uint64(0), 2}}
	for _, c := range cases {
		require.Equal(t, c.want, lookup(shards, c.hi, c.lo), "%d/%d", c.hi, c.lo)
	}
}

func TestHashKeyMatchesKinesis(t *testing.T) {
	// MD5("a") = 0cc175b9c0f1b6a831c399e269772661
	hi, lo, err := hashKey("a", "")
	require.NoError(t, err)
	require.Equal(t, uint64(0x0cc175b9c0f1b6a8), hi)
	require.Equal(t, uint64(0x31c399e269772661), lo)
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want errClass
		code string
	}{
		{&types.ProvisionedThroughputExceededException{Message: aws.String("x")}, classThrottled, "ProvisionedThroughputExceededException"},
		{&types.ResourceNotFoundException{}, classRejected, "ResourceNotFoundException"},
		{&types.AccessDeniedException{}, classRejected, "AccessDeniedException"},
		{&types.InvalidArgumentException{}, classRejected, "InvalidArgumentException"},
		{&types.KMSAccessDeniedException{}, classRejected, "KMSAccessDeniedException"},
		{&types.KMSThrottlingException{}, classTransient, "KMSThrottlingException"},
		{&types.InternalFailureException{}, classTransient, "InternalFailureException"},
		{&smithy.GenericAPIError{Code: "ValidationException"}, classRejected, "ValidationException"},
		{errors.New("dial tcp: connection refused"), classTransient, "NetworkError"},
		{context.DeadlineExceeded, classTransient, "RequestCanceled"},
		{ErrRequestTimeout, classTransient, "RequestTimeout"},
		{errNoOpenShards, classTransient, codeNoOpenShards},
	}
	for _, c := range cases {
		class, code, _ := classifyErr(c.err)
		require.Equal(t, c.want, class, "%v", c.err)
		require.Equal(t, c.code, code, "%v", c.err)
	}
}

// cachedKeys counts the keys the cache holds.
func cachedKeys(c *keyCache) int {
	n := 0
	for i := range c.sets {
		for j := range c.sets[i].ents {
			if c.sets[i].ents[j].Load() != nil {
				n++
			}
		}
	}
	return n
}

// homeKeys counts the keys the cache holds in the set a look-up not
// sampled while bypassed finds them in (a sampled one may hold a copy in
// another set).
func homeKeys(c *keyCache, keys []string) int {
	n := 0
	for _, k := range keys {
		set := &c.sets[maphash.String(c.seed, k)%keyCacheSets]
		for i := range set.ents {
			if e := set.ents[i].Load(); e != nil && e.key == k {
				n++
			}
		}
	}
	return n
}

// The key cache returns what checkRecord returns, keeps a working set of
// 4,096 repeated keys (nearly all of them: a set of four ways can
// overflow), and a stream of keys that never repeat neither evicts them
// nor grows it.
func TestKeyCache(t *testing.T) {
	c := newKeyCache()
	keys := benchKeys(4096)
	for round := 0; round < 3; round++ {
		for _, k := range keys {
			hi, lo, err := c.check(k, "", 100)
			require.NoError(t, err)
			whi, wlo, _ := hashKey(k, "")
			require.Equal(t, [2]uint64{whi, wlo}, [2]uint64{hi, lo}, k)
		}
	}
	n := homeKeys(c, keys)
	require.GreaterOrEqual(t, n, 4000)
	_, _, err := c.check(keys[0], "", MaxRecordSize)
	require.ErrorIs(t, err, ErrRecordTooLarge, "a cached key still has its record's size checked")

	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100_000; i++ {
		k := fmt.Sprintf("stream-%d-%d", i, r.Uint64())
		_, _, err := c.check(k, "", 100)
		require.NoError(t, err)
	}
	require.LessOrEqual(t, cachedKeys(c), keyCacheSets*keyCacheWays)
	require.GreaterOrEqual(t, homeKeys(c, keys), n-n/50, "keys that never repeat evicted the repeated ones")
}

// A stream of keys that never repeat turns the cache's look-ups off, a
// working set of repeated keys turns them on again, and the hash keys are
// right in both modes.
func TestKeyCacheBypass(t *testing.T) {
	c := newKeyCache()
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 50_000; i++ {
		k := fmt.Sprintf("stream-%d-%d", i, r.Uint64())
		hi, lo, err := c.check(k, "", 100)
		require.NoError(t, err)
		whi, wlo, _ := hashKey(k, "")
		require.Equal(t, [2]uint64{whi, wlo}, [2]uint64{hi, lo}, k)
	}
	require.True(t, c.bypass.Load(), "keys that never repeat still look the cache up")
	_, _, err := c.check("bad\xff", "", 100)
	require.ErrorIs(t, err, ErrPartitionKeyNotUTF8, "a bypassed cache still checks keys")

	keys := benchKeys(4096)
	rounds := 0
	for ; rounds < 10 && c.bypass.Load(); rounds++ {
		for _, k := range keys {
			hi, lo, err := c.check(k, "", 100)
			require.NoError(t, err)
			whi, wlo, _ := hashKey(k, "")
			require.Equal(t, [2]uint64{whi, wlo}, [2]uint64{hi, lo}, k)
		}
	}
	require.False(t, c.bypass.Load(), "repeated keys never turned the cache back on")
	for _, k := range keys { // cached again from here on
		_, _, err := c.check(k, "", 100)
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, cachedKeys(c), 3500)
	t.Logf("cache back on after %d rounds of the working set", rounds)
}

// A key set that repeats but is far larger than the cache (16 times: a
// fleet's device ids) keeps it bypassed pass after pass: the keys sampled
// while bypassed, 1 in keyCacheSampleEvery, must not find a cache to
// themselves, which they would fit, or the measured hits (most of them)
// turn the look-ups back on, to find hardly any. Before the sample used a
// share of the sets as large as its share of the keys, a quarter of the
// records went through the cache from the second pass on (half of them
// here). A few windows may still turn it on while bypassed: the sampled
// keys that fit come back together, the first of each pass.
func TestKeyCacheLargeKeySetStaysBypassed(t *testing.T) {
	c := newKeyCache()
	keys := benchKeys(16 * keyCacheSets * keyCacheWays)
	for pass := 0; pass < 3; pass++ {
		looked := 0
		for _, k := range keys {
			if !c.bypass.Load() {
				looked++
			}
			_, _, err := c.check(k, "", 100)
			require.NoError(t, err)
		}
		t.Logf("pass %d: %d of %d records looked the cache up", pass, looked, len(keys))
		if pass > 0 {
			require.Less(t, looked, len(keys)/8, "pass %d: the cache left bypass for keys it cannot hold", pass)
		}
	}
}

// BenchmarkKeyCheck is the partition-key check of a Put, through the key
// cache and without it (checkRecord: the MD5 every time), for the
// benchmark key patterns: the cache should beat the MD5 by far with
// repeated keys and cost next to nothing with keys that never repeat.
func BenchmarkKeyCheck(b *testing.B) {
	for _, pattern := range benchPatterns {
		keys := benchKeySet(pattern)
		b.Run("cache/keys="+pattern, func(b *testing.B) {
			c := newKeyCache()
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				if _, _, err := c.check(keys[i%len(keys)], "", benchDataSize); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N)
		})
		b.Run("md5/keys="+pattern, func(b *testing.B) {
			cpu := startCPU()
			for i := 0; i < b.N; i++ {
				if _, _, err := checkRecord(keys[i%len(keys)], "", benchDataSize); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N)
		})
	}
}
