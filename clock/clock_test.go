package clock

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFakeTimerFiresOnAdvance(t *testing.T) {
	f := NewFake(time.Time{})
	start := f.Now()
	tm := f.NewTimer(time.Second)
	f.Advance(999 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("fired early")
	default:
	}
	f.Advance(time.Millisecond)
	require.Equal(t, start.Add(time.Second), <-tm.C())
	require.Equal(t, 0, f.Pending())
	require.False(t, tm.Stop())
}

func TestFakeTimerStopAndReset(t *testing.T) {
	f := NewFake(time.Time{})
	tm := f.NewTimer(time.Second)
	require.True(t, tm.Stop())
	f.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	require.False(t, tm.Reset(time.Second))
	f.Advance(time.Second)
	<-tm.C()
}

func TestFakeTickerFiresEachPeriod(t *testing.T) {
	f := NewFake(time.Time{})
	tk := f.NewTicker(time.Second)
	defer tk.Stop()
	for i := 0; i < 3; i++ {
		f.Advance(time.Second)
		<-tk.C()
	}
	// A large jump delivers one tick (buffer of one) like time.Ticker.
	f.Advance(10 * time.Second)
	<-tk.C()
	select {
	case <-tk.C():
		t.Fatal("ticker delivered more than one buffered tick")
	default:
	}
}

func TestBlockUntilAndSleep(t *testing.T) {
	f := NewFake(time.Time{})
	done := make(chan error)
	go func() { done <- Sleep(context.Background(), f, time.Minute) }()
	f.BlockUntil(1)
	f.Advance(time.Minute)
	require.NoError(t, <-done)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(ctx, f, time.Minute) }()
	f.BlockUntil(1)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func TestRealClock(t *testing.T) {
	c := OrReal(nil)
	require.NoError(t, Sleep(context.Background(), c, time.Millisecond))
	tk := c.NewTicker(time.Millisecond)
	<-tk.C()
	tk.Stop()
}
