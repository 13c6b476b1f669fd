package kinesistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardflow/shardflow/clock"
)

// Hook is called at the start of every operation with its name (OpPutRecords,
// ...). Returning an error fails the call with it; blocking until ctx is done
// simulates a stalled endpoint (return ctx.Err() then).
type Hook func(ctx context.Context, op string) error

type failSpec struct {
	n   int
	err error
}

type faultState struct {
	mu         sync.Mutex
	rng        *rand.Rand
	latency    map[string]time.Duration
	hook       Hook
	failNext   map[string][]*failSpec
	failAfter  map[string][]*failSpec
	throttle   map[string]float64
	recordFrac float64
	recordCode string
}

func (f *faultState) init(seed uint64) {
	if seed == 0 {
		seed = rand.Uint64()
	}
	f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f.reset()
}

func (f *faultState) reset() {
	f.latency = map[string]time.Duration{}
	f.hook = nil
	f.failNext = map[string][]*failSpec{}
	f.failAfter = map[string][]*failSpec{}
	f.throttle = map[string]float64{}
	f.recordFrac, f.recordCode = 0, ""
}

// ResetFaults removes every injected fault, latency and hook.
func (s *Server) ResetFaults() {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.reset()
}

// Throttle makes a fraction (0..1) of the calls to op fail with the
// service's throttling error: ProvisionedThroughputExceededException for the
// data operations (PutRecord, PutRecords, GetRecords, GetShardIterator,
// SubscribeToShard) and LimitExceededException for the others. A fraction of
// 0 removes the rule.
func (s *Server) Throttle(op string, fraction float64) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if fraction <= 0 {
		delete(s.faults.throttle, op)
		return
	}
	s.faults.throttle[op] = min(fraction, 1)
}

// FailNext makes the next n calls to op fail with err before taking effect.
// A nil err means an InternalFailure (HTTP 500) from the service. Calls
// queue: FailNext(op, 2, a) then FailNext(op, 1, b) fails two calls with a,
// then one with b.
func (s *Server) FailNext(op string, n int, err error) {
	s.queueFailure(s.faults.failNext, op, n, err)
}

// FailNextAfterApply makes the next n calls to op take effect and then fail
// with err (nil means InternalFailure), as when the response is lost: a
// PutRecords whose records were stored but whose caller sees an error.
func (s *Server) FailNextAfterApply(op string, n int, err error) {
	s.queueFailure(s.faults.failAfter, op, n, err)
}

func (s *Server) queueFailure(m map[string][]*failSpec, op string, n int, err error) {
	if n <= 0 {
		return
	}
	if err == nil {
		err = ErrInternalFailure
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	m[op] = append(m[op], &failSpec{n: n, err: err})
}

// FailRecords makes a fraction (0..1) of PutRecords entries fail with the
// given ErrorCode ("ProvisionedThroughputExceededException", the default
// when empty, or "InternalFailure") while the rest are stored and the call
// succeeds, as the service does under partial throttling. A fraction of 0
// removes the rule.
func (s *Server) FailRecords(fraction float64, errorCode string) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if errorCode == "" {
		errorCode = codeThroughput
	}
	s.faults.recordFrac, s.faults.recordCode = min(max(fraction, 0), 1), errorCode
}

// SetLatency adds d before every call to op (AnyOp: every call). The wait is
// measured on Options.Clock, so a test with a fake clock advances it, and it
// ends early with ctx.Err() when ctx is cancelled. Zero removes it.
func (s *Server) SetLatency(op string, d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if d <= 0 {
		delete(s.faults.latency, op)
		return
	}
	s.faults.latency[op] = d
}

// SetHook installs h (nil removes it); see Hook.
func (s *Server) SetHook(h Hook) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.hook = h
}

// ErrInternalFailure is the error FailNext and FailNextAfterApply use when
// given nil: the service's InternalFailure.
var ErrInternalFailure error = &types.InternalFailureException{Message: aws.String("Internal service failure.")}

const (
	codeThroughput = "ProvisionedThroughputExceededException"
	codeInternal   = "InternalFailure"
)

func isDataOp(op string) bool {
	switch op {
	case OpPutRecord, OpPutRecords, OpGetRecords, OpGetShardIterator, OpSubscribeToShard:
		return true
	}
	return false
}

// gate runs the fault injection steps that precede an operation.
func (s *Server) gate(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f := &s.faults
	f.mu.Lock()
	d := f.latency[op] + f.latency[AnyOp]
	hook := f.hook
	f.mu.Unlock()
	if d > 0 {
		if err := clock.Sleep(ctx, s.clk, d); err != nil {
			return err
		}
	}
	if hook != nil {
		if err := hook(ctx, op); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := popFailure(f.failNext, op); err != nil {
		return err
	}
	for _, key := range [2]string{op, AnyOp} {
		if p, ok := f.throttle[key]; ok && f.rng.Float64() < p {
			if isDataOp(op) {
				return errThroughput(fmt.Sprintf("Rate exceeded for %s (injected by kinesistest).", op))
			}
			return errLimit("Rate exceeded for %s (injected by kinesistest).", op)
		}
	}
	return nil
}

// afterApply returns the error of a FailNextAfterApply rule, if one is due.
func (s *Server) afterApply(op string) error {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return popFailure(s.faults.failAfter, op)
}

func popFailure(m map[string][]*failSpec, op string) error {
	for _, key := range [2]string{op, AnyOp} {
		q := m[key]
		if len(q) == 0 {
			continue
		}
		err := q[0].err
		if q[0].n--; q[0].n == 0 {
			m[key] = q[1:]
		}
		return err
	}
	return nil
}

// recordFault draws whether one PutRecords entry fails; it returns the
// ErrorCode or "".
func (s *Server) recordFault() string {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.recordFrac > 0 && s.faults.rng.Float64() < s.faults.recordFrac {
		return s.faults.recordCode
	}
	return ""
}
