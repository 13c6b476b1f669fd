package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewCoordinatorRejectsInvalidConfig(t *testing.T) {
	for name, c := range map[string]struct {
		store Store
		cfg   Config
	}{
		"no store":               {nil, Config{WorkerID: "w"}},
		"no worker":              {NewMemoryStore(), Config{}},
		"negative failover":      {NewMemoryStore(), Config{WorkerID: "w", FailoverTime: -time.Second}},
		"renew beyond failover":  {NewMemoryStore(), Config{WorkerID: "w", FailoverTime: time.Second, RenewInterval: time.Second}},
		"negative take":          {NewMemoryStore(), Config{WorkerID: "w", TakeInterval: -time.Second}},
		"initial delay too long": {NewMemoryStore(), Config{WorkerID: "w", TakeInterval: time.Second, InitialTakeDelay: time.Second}},
		"negative max leases":    {NewMemoryStore(), Config{WorkerID: "w", MaxLeasesForWorker: -1}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewCoordinator(c.store, c.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
	_, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w"})
	require.NoError(t, err, "the defaults are valid")
}
