package lease

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AttrStreamName and AttrShardID are the attributes KCL's multi-stream
// serializer adds to every lease: streamName holds the serialized stream
// identifier "account:stream:creationEpoch" (not the bare stream name; KCL
// keeps the name for legacy reasons) and shardId the bare shard id.
const (
	AttrStreamName = "streamName"
	AttrShardID    = "shardId"
)

// ErrBadStreamIdentifier is wrapped by ParseStreamIdentifier and
// ParseMultiStreamKey errors.
var ErrBadStreamIdentifier = errors.New("lease: bad stream identifier")

// StreamIdentifier names one stream of a multi-stream application the way
// KCL does: account id, stream name and creation epoch (seconds). The epoch
// tells a stream apart from a deleted one recreated under the same name;
// KCL does not check it against Kinesis, so whatever the application chose
// when the table was written must be used again.
type StreamIdentifier struct {
	AccountID     string
	StreamName    string
	CreationEpoch int64
}

// String returns KCL's serialized form "account:stream:creationEpoch", the
// value of the streamName attribute and the prefix of the lease keys.
func (s StreamIdentifier) String() string {
	return s.AccountID + ":" + s.StreamName + ":" + strconv.FormatInt(s.CreationEpoch, 10)
}

// Validate checks KCL's rules: a numeric account id, a stream name without
// ':' and a positive creation epoch.
func (s StreamIdentifier) Validate() error {
	if s.AccountID == "" || strings.Trim(s.AccountID, "0123456789") != "" {
		return fmt.Errorf("%w: account id %q is not numeric", ErrBadStreamIdentifier, s.AccountID)
	}
	if s.StreamName == "" || strings.Contains(s.StreamName, ":") {
		return fmt.Errorf("%w: stream name %q is empty or contains ':'", ErrBadStreamIdentifier, s.StreamName)
	}
	if s.CreationEpoch <= 0 {
		return fmt.Errorf("%w: creation epoch %d is not positive", ErrBadStreamIdentifier, s.CreationEpoch)
	}
	return nil
}

// ParseStreamIdentifier parses "account:stream:creationEpoch" (KCL's
// pattern [0-9]+:[^:]+:[0-9]+, epoch > 0).
func ParseStreamIdentifier(s string) (StreamIdentifier, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return StreamIdentifier{}, fmt.Errorf("%w: %q is not account:stream:creationEpoch", ErrBadStreamIdentifier, s)
	}
	epoch, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || strings.Trim(parts[2], "0123456789") != "" {
		return StreamIdentifier{}, fmt.Errorf("%w: %q: creation epoch %q is not a number", ErrBadStreamIdentifier, s, parts[2])
	}
	id := StreamIdentifier{AccountID: parts[0], StreamName: parts[1], CreationEpoch: epoch}
	if err := id.Validate(); err != nil {
		return StreamIdentifier{}, fmt.Errorf("%q: %w", s, err)
	}
	return id, nil
}

// MultiStreamKey returns KCL's multi-stream lease key
// "account:stream:creationEpoch:shardId" for a serialized stream
// identifier and a bare shard id; with streamID "" (single-stream mode) it
// is the shard id itself, the single-stream key.
func MultiStreamKey(streamID, shardID string) string {
	if streamID == "" {
		return shardID
	}
	return streamID + ":" + shardID
}

// ParseMultiStreamKey splits a multi-stream lease key into the serialized
// stream identifier and the bare shard id. Kinesis stream names and shard
// ids contain no ':', so the split is unambiguous.
func ParseMultiStreamKey(key string) (streamID, shardID string, err error) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 || i == len(key)-1 {
		return "", "", fmt.Errorf("%w: lease key %q is not account:stream:creationEpoch:shardId", ErrBadStreamIdentifier, key)
	}
	if _, err := ParseStreamIdentifier(key[:i]); err != nil {
		return "", "", err
	}
	return key[:i], key[i+1:], nil
}

// Shard returns the lease's bare shard id: ShardID in multi-stream mode,
// the key itself otherwise.
func (l Lease) Shard() string {
	if l.ShardID != "" {
		return l.ShardID
	}
	return l.Key
}

// ParentKeys returns the lease keys of the shard's parents. KCL stores
// parentShardId as bare shard ids in both modes; in multi-stream mode a
// parent's lease key is the stream identifier, ':' and the parent id.
func (l Lease) ParentKeys() []string { return l.keysOf(l.ParentShardIDs) }

// ChildKeys returns the lease keys of the shard's children (childShardIds,
// bare ids like parentShardId).
func (l Lease) ChildKeys() []string { return l.keysOf(l.ChildShardIDs) }

func (l Lease) keysOf(ids []string) []string {
	if l.StreamID == "" || len(ids) == 0 {
		return ids
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = MultiStreamKey(l.StreamID, id)
	}
	return out
}
