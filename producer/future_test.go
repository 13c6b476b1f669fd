package producer

import (
	"context"
	"sync"
	"testing"
)

// TestFutureStates checks the Future's methods before and after its
// outcome, whether Done is called before complete, after it, or not at
// all, and with Done and complete racing (run it with -race).
func TestFutureStates(t *testing.T) {
	res := &Result{ShardID: "s"}
	ctx := context.Background()
	isClosed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}

	t.Run("done before complete", func(t *testing.T) {
		var f Future
		if f.Result() != nil {
			t.Fatal("Result before the outcome")
		}
		c := f.Done()
		if c != f.Done() {
			t.Fatal("Done returned two channels before the outcome")
		}
		if isClosed(c) || f.Result() != nil {
			t.Fatal("done before the outcome")
		}
		f.complete(res)
		if !isClosed(c) {
			t.Fatal("Done's channel not closed by the outcome")
		}
		if f.Result() != res {
			t.Fatal("Result after the outcome")
		}
		if r, err := f.Wait(ctx); r != res || err != nil {
			t.Fatalf("Wait = %v, %v", r, err)
		}
	})

	t.Run("complete before done", func(t *testing.T) {
		var f Future
		f.complete(res)
		if !isClosed(f.Done()) || f.Result() != res {
			t.Fatal("not done after the outcome")
		}
		if r, _ := f.Wait(ctx); r != res {
			t.Fatal("Wait after the outcome")
		}
	})

	t.Run("wait canceled", func(t *testing.T) {
		var f Future
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		if r, err := f.Wait(canceled); r != nil || err != context.Canceled {
			t.Fatalf("Wait = %v, %v", r, err)
		}
	})

	t.Run("racing", func(t *testing.T) {
		for range 200 {
			var f Future
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					<-f.Done()
					if f.Result() != res {
						t.Error("Done closed without the Result")
					}
				})
			}
			wg.Go(func() {
				if r, _ := f.Wait(ctx); r != res {
					t.Error("Wait returned without the Result")
				}
			})
			f.complete(res)
			wg.Wait()
		}
	})
}
