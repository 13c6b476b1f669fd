// Package health serves liveness and readiness endpoints built on
// consumer.Status and producer.Status, for the examples (and to copy into
// a service: it uses only the public API).
//
//	h := health.Handler{Consumers: []health.ConsumerStatus{c}, Producers: []health.ProducerStatus{p}}
//	h.Register(mux) // /livez, /readyz, /status
//
// /livez fails only when a consumer's Run has returned: restarting the
// process helps then. A lease table or stream outage does not fail it,
// since restarting every worker of a fleet during a DynamoDB outage only
// adds start-up load when it ends. /readyz fails while a consumer is
// starting, stopped, or unhealthy (its lease store or stream failing for
// longer than consumer.Config.UnhealthyAfter): alert on it, or take the
// instance out of a load balancer if it also serves requests. /status
// returns the snapshots as JSON.
package health

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/shardflow/shardflow/consumer"
	"github.com/shardflow/shardflow/producer"
)

// ConsumerStatus is what the handler needs of a consumer;
// *consumer.Consumer has it.
type ConsumerStatus interface{ Status() consumer.Status }

// ProducerStatus is what the handler needs of a producer;
// *producer.Producer has it.
type ProducerStatus interface{ Status() producer.Status }

// Handler serves the endpoints for the consumers and producers of one
// process.
type Handler struct {
	Consumers []ConsumerStatus
	Producers []ProducerStatus
}

// Register adds /livez, /readyz and /status to mux.
func (h Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /livez", h.live)
	mux.HandleFunc("GET /readyz", h.ready)
	mux.HandleFunc("GET /status", h.status)
}

func (h Handler) live(w http.ResponseWriter, _ *http.Request) {
	var problems []string
	for _, c := range h.Consumers {
		if st := c.Status(); st.Stopped {
			msg := "consumer " + st.WorkerID + " stopped"
			if st.Err != nil {
				msg += ": " + st.Err.Error()
			}
			problems = append(problems, msg)
		}
	}
	reply(w, problems)
}

func (h Handler) ready(w http.ResponseWriter, _ *http.Request) {
	var problems []string
	for _, c := range h.Consumers {
		st := c.Status()
		switch {
		case st.Stopped:
			problems = append(problems, "consumer "+st.WorkerID+" stopped")
		case !st.Ready:
			problems = append(problems, "consumer "+st.WorkerID+" starting")
		}
		if st.StoreUnhealthy() {
			problems = append(problems, "consumer "+st.WorkerID+": lease store failing since "+st.StoreFailingSince.Format(time.RFC3339)+": "+errString(st.StoreErr))
		}
		if st.StreamUnhealthy() {
			problems = append(problems, "consumer "+st.WorkerID+": stream failing since "+st.StreamFailingSince.Format(time.RFC3339)+": "+errString(st.StreamErr))
		}
	}
	reply(w, problems)
}

// reply writes 200 "ok", or 503 with one problem a line.
func reply(w http.ResponseWriter, problems []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) == 0 {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for _, p := range problems {
		_, _ = w.Write([]byte(p + "\n"))
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// consumerView is a consumer.Status in JSON (errors as strings).
type consumerView struct {
	WorkerID           string      `json:"worker_id"`
	Ready              bool        `json:"ready"`
	Healthy            bool        `json:"healthy"`
	ShuttingDown       bool        `json:"shutting_down,omitempty"`
	Stopped            bool        `json:"stopped,omitempty"`
	Err                string      `json:"error,omitempty"`
	Leases             int         `json:"leases"`
	StoreFailingSince  *time.Time  `json:"store_failing_since,omitempty"`
	StoreErr           string      `json:"store_error,omitempty"`
	StreamFailingSince *time.Time  `json:"stream_failing_since,omitempty"`
	StreamErr          string      `json:"stream_error,omitempty"`
	Shards             []shardView `json:"shards"`
}

type shardView struct {
	LeaseKey           string     `json:"lease_key"`
	State              string     `json:"state"`
	Checkpoint         string     `json:"checkpoint"`
	MillisBehindLatest int64      `json:"millis_behind_latest"`
	LastFetch          *time.Time `json:"last_fetch,omitempty"`
	LastProcessed      *time.Time `json:"last_processed,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (h Handler) status(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Consumers []consumerView    `json:"consumers"`
		Producers []producer.Status `json:"producers"`
	}{Consumers: []consumerView{}, Producers: []producer.Status{}}
	for _, c := range h.Consumers {
		st := c.Status()
		v := consumerView{
			WorkerID: st.WorkerID, Ready: st.Ready, Healthy: st.Healthy(), ShuttingDown: st.ShuttingDown, Stopped: st.Stopped,
			Err: errString(st.Err), Leases: st.Leases,
			StoreFailingSince: timePtr(st.StoreFailingSince), StoreErr: errString(st.StoreErr),
			StreamFailingSince: timePtr(st.StreamFailingSince), StreamErr: errString(st.StreamErr),
			Shards: []shardView{},
		}
		for _, s := range st.Shards {
			v.Shards = append(v.Shards, shardView{
				LeaseKey: s.LeaseKey, State: s.State.String(), Checkpoint: s.Checkpoint.String(),
				MillisBehindLatest: s.MillisBehindLatest, LastFetch: timePtr(s.LastFetch), LastProcessed: timePtr(s.LastProcessed),
			})
		}
		out.Consumers = append(out.Consumers, v)
	}
	for _, p := range h.Producers {
		out.Producers = append(out.Producers, p.Status())
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
