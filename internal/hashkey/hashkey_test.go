package hashkey

import (
	"crypto/md5"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	for _, s := range []string{"0", "1", "9", "10", "18446744073709551615", "18446744073709551616",
		"170141183460469231731687303715884105728", max.String(), "007", strings.Repeat("0", 50) + "5"} {
		k, ok := Parse(s)
		require.True(t, ok, s)
		want, _ := new(big.Int).SetString(s, 10)
		got := new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(k.Hi), 64), new(big.Int).SetUint64(k.Lo))
		require.Zero(t, want.Cmp(got), s)
	}
	over := new(big.Int).Add(max, big.NewInt(1)).String()
	for _, s := range []string{"", "-1", "+1", "1e5", "abc", " 1", over, max.String() + "0", "999999999999999999999999999999999999999"} {
		_, ok := Parse(s)
		require.False(t, ok, s)
	}
}

func TestLess(t *testing.T) {
	require.True(t, Key{0, 5}.Less(Key{1, 0}))
	require.True(t, Key{1, 1}.Less(Key{1, 2}))
	require.False(t, Key{1, 2}.Less(Key{1, 2}))
	require.False(t, Key{2, 0}.Less(Key{1, ^uint64(0)}))
}

func TestOf(t *testing.T) {
	for _, pk := range []string{"", "a", "user-42", strings.Repeat("x", 64), strings.Repeat("y", 65), strings.Repeat("😀", 100)} {
		sum := md5.Sum([]byte(pk))
		want := new(big.Int).SetBytes(sum[:])
		k := Of(pk)
		got := new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(k.Hi), 64), new(big.Int).SetUint64(k.Lo))
		require.Zero(t, want.Cmp(got), pk)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("340282366920938463463374607431768211455")
	f.Add("340282366920938463463374607431768211456")
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := Parse(s)
		want, isInt := new(big.Int).SetString(s, 10)
		valid := isInt && s != "" && strings.Trim(s, "0123456789") == "" && want.BitLen() <= 128
		require.Equal(t, valid, ok, s)
		if ok {
			got := new(big.Int).Or(new(big.Int).Lsh(new(big.Int).SetUint64(k.Hi), 64), new(big.Int).SetUint64(k.Lo))
			require.Zero(t, want.Cmp(got))
		}
	})
}
