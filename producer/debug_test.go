package producer

import "fmt"

func (p *Producer) debugState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("now=%v out=%d inflight=%d readyN=%d gen=%d nextWake=%v unmapped=%d", p.clk.Now(), p.heldRecs.Load(), len(p.inflight), p.ready.n.Load(), p.gen, p.nextWake.Load(), len(p.unmapped.pending))
	for _, r := range p.inflight {
		s += fmt.Sprintf(" [req dl=%v to=%v n=%d]", r.deadline, r.timedOut, len(r.krs))
	}
	for _, l := range p.lanes {
		s += fmt.Sprintf(" {%s ready=%d open=%v nb=%v inflight=%d}", l.shard.id, l.ready.len(), "?", l.notBefore, l.inflight)
	}
	return s
}

var debugHook = func() string { return "" }
