package streamref

import (
	"fmt"
	"strings"
)

// Ref is a stream named by Name or ARN; when both are set, the ARN names
// it in Kinesis calls.
type Ref struct{ Name, ARN string }

// Parse reads a stream given as one string: an ARN when it begins with
// "arn:", else a name.
func Parse(nameOrARN string) Ref {
	if strings.HasPrefix(nameOrARN, "arn:") {
		return Ref{ARN: nameOrARN}
	}
	return Ref{Name: nameOrARN}
}

// Label is the name for logs and errors: the name if set, else the ARN.
func (r Ref) Label() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ARN
}

// Input returns the StreamName and StreamARN fields of a Kinesis input:
// the ARN when set, else the name; the other is nil.
func (r Ref) Input() (name, arn *string) {
	if r.ARN != "" {
		a := r.ARN
		return nil, &a
	}
	n := r.Name
	return &n, nil
}

// ARN is a Kinesis stream ARN: arn:partition:kinesis:region:account:stream/name.
type ARN struct{ Partition, Region, Account, Name string }

// ParseARN splits an ARN into its fields; ok is false when it has fewer
// than six. It checks no more: the ARNs it reads come from Kinesis. Name
// is the resource after "stream/", empty for another resource.
func ParseARN(s string) (a ARN, ok bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) < 6 {
		return ARN{}, false
	}
	a = ARN{Partition: parts[1], Region: parts[3], Account: parts[4]}
	a.Name, _ = strings.CutPrefix(parts[5], "stream/")
	return a, true
}

func (a ARN) String() string {
	return fmt.Sprintf("arn:%s:kinesis:%s:%s:stream/%s", a.Partition, a.Region, a.Account, a.Name)
}
