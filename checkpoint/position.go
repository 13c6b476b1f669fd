package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// Sentinel names, exactly as KCL stores them in the lease table's
// checkpoint attribute.
const (
	SentinelTrimHorizon = "TRIM_HORIZON"
	SentinelLatest      = "LATEST"
	SentinelAtTimestamp = "AT_TIMESTAMP"
	SentinelShardEnd    = "SHARD_END"
)

// Position is a place in a shard: a real record position (Sentinel == "")
// or a sentinel. The zero value is not a valid position; use the sentinel
// variables or At.
type Position struct {
	// Sentinel is "" for a real position, else one of TRIM_HORIZON, LATEST,
	// AT_TIMESTAMP or SHARD_END.
	Sentinel string
	// SequenceNumber is the decimal sequence number (up to 128 bits) when
	// Sentinel == "".
	SequenceNumber string
	// SubSequenceNumber is the index of the user record inside an aggregated
	// record; 0 for non-aggregated records.
	SubSequenceNumber int64
}

// The sentinel positions.
var (
	TrimHorizon = Position{Sentinel: SentinelTrimHorizon}
	Latest      = Position{Sentinel: SentinelLatest}
	AtTimestamp = Position{Sentinel: SentinelAtTimestamp}
	ShardEnd    = Position{Sentinel: SentinelShardEnd}
)

// At returns the real position of a record (and of a user record inside it
// when it was aggregated).
func At(sequenceNumber string, subSequence int64) Position {
	return Position{SequenceNumber: sequenceNumber, SubSequenceNumber: subSequence}
}

// Parse turns the value of KCL's checkpoint attribute (a sequence number or
// a sentinel name) and its sub-sequence number into a Position.
func Parse(s string, subSequence int64) (Position, error) {
	switch s {
	case SentinelTrimHorizon, SentinelLatest, SentinelAtTimestamp, SentinelShardEnd:
		return Position{Sentinel: s, SubSequenceNumber: subSequence}, nil
	}
	p := At(s, subSequence)
	if err := p.Validate(); err != nil {
		return Position{}, err
	}
	return p, nil
}

// IsSentinel reports whether p is a sentinel rather than a record position.
func (p Position) IsSentinel() bool { return p.Sentinel != "" }

// IsZero reports whether p is the zero Position (no position at all).
func (p Position) IsZero() bool { return p == Position{} }

// Validate reports whether p is a known sentinel or a non-negative decimal
// sequence number with a non-negative sub-sequence number.
func (p Position) Validate() error {
	switch p.Sentinel {
	case "":
	case SentinelTrimHorizon, SentinelLatest, SentinelAtTimestamp, SentinelShardEnd:
		return nil
	default:
		return fmt.Errorf("%w: unknown sentinel %q", ErrInvalidPosition, p.Sentinel)
	}
	if p.SequenceNumber == "" {
		return fmt.Errorf("%w: empty sequence number", ErrInvalidPosition)
	}
	for i := 0; i < len(p.SequenceNumber); i++ {
		if c := p.SequenceNumber[i]; c < '0' || c > '9' {
			return fmt.Errorf("%w: sequence number %q is not decimal", ErrInvalidPosition, p.SequenceNumber)
		}
	}
	if p.SubSequenceNumber < 0 {
		return fmt.Errorf("%w: negative sub-sequence number %d", ErrInvalidPosition, p.SubSequenceNumber)
	}
	return nil
}

// rank orders sentinels around real positions. It follows KCL's
// ExtendedSequenceNumber: AT_TIMESTAMP < TRIM_HORIZON < LATEST < every real
// sequence number < SHARD_END.
func (p Position) rank() int {
	switch p.Sentinel {
	case "":
		return 0
	case SentinelAtTimestamp:
		return -3
	case SentinelTrimHorizon:
		return -2
	case SentinelLatest:
		return -1
	case SentinelShardEnd:
		return 1
	}
	return -4 // unknown sentinels sort first
}

// Compare returns -1, 0 or +1 as p is before, equal to or after q. Real
// positions compare by numeric sequence number, then sub-sequence number.
// Sentinels sort as AT_TIMESTAMP < TRIM_HORIZON < LATEST < every real
// position < SHARD_END (KCL's order); a sentinel equals only itself.
func (p Position) Compare(q Position) int {
	if rp, rq := p.rank(), q.rank(); rp != rq || rp != 0 {
		switch {
		case rp < rq:
			return -1
		case rp > rq:
			return 1
		}
		return strings.Compare(p.Sentinel, q.Sentinel)
	}
	if c := compareDecimal(p.SequenceNumber, q.SequenceNumber); c != 0 {
		return c
	}
	switch {
	case p.SubSequenceNumber < q.SubSequenceNumber:
		return -1
	case p.SubSequenceNumber > q.SubSequenceNumber:
		return 1
	}
	return 0
}

// compareDecimal compares two non-negative decimal strings numerically
// without allocating: after leading zeros, a longer number is larger, and
// equal lengths compare lexically.
func compareDecimal(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// String returns the sentinel name, the sequence number, or
// "sequence/sub" for a user record inside an aggregated record.
func (p Position) String() string {
	if p.IsSentinel() {
		return p.Sentinel
	}
	if p.IsZero() {
		return "<none>"
	}
	if p.SubSequenceNumber == 0 {
		return p.SequenceNumber
	}
	return p.SequenceNumber + "/" + strconv.FormatInt(p.SubSequenceNumber, 10)
}
