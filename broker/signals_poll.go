package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyward/keyward/federation"
)

// Poll delivery of Shared Signals (RFC 8936): for each stream with a
// poller, Run asks the transmitter's poll endpoint for SETs every
// interval, acts on each as a push would, and tells the transmitter in its
// next request which it processed (ack) and which it refused (setErrs).

// DefaultSSFPollInterval is how often a stream is polled by default.
const DefaultSSFPollInterval = 30 * time.Second

// Bounds of one poll round: SETs asked per request, and requests while
// the transmitter says more are available (the rest waits for the next
// interval).
const (
	ssfPollMaxEvents = 100
	ssfPollMaxRounds = 10
)

// setPoller is a transmitter's poll endpoint (*federation.SETPoller).
type setPoller interface {
	Poll(ctx context.Context, req federation.SETPollRequest) (federation.SETPollResponse, error)
}

// Run polls every stream with a poller until ctx ends. A failed poll is
// logged and retried at the next interval; it returns nil when ctx ends.
func (s *Signals) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for upstream, st := range s.streams {
		if st.poller == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.pollLoop(ctx, upstream, st)
		}()
	}
	wg.Wait()
	return nil
}

func (s *Signals) pollLoop(ctx context.Context, upstream string, st ssfStream) {
	t := time.NewTicker(st.pollInterval)
	defer t.Stop()
	for {
		if err := s.PollOnce(ctx, upstream); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "SSF poll failed; retrying at the next interval", "event", "ssf_poll_failed",
				"upstream", upstream, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PollOnce is one poll round of upstream's stream: requests while the
// transmitter has more (at most ssfPollMaxRounds), each acknowledging and
// reporting the SETs of the previous answer, then one acknowledgement-only
// request (maxEvents 0) for the last answer's. A SET that failed on
// Keyward's side (the store) is neither acknowledged nor reported: the
// transmitter delivers it again.
func (s *Signals) PollOnce(ctx context.Context, upstream string) error {
	st, ok := s.streams[upstream]
	if !ok || st.poller == nil {
		return errors.New("no poll delivery is configured for this upstream")
	}
	req := federation.SETPollRequest{MaxEvents: ssfPollMaxEvents, ReturnImmediately: true}
	for round := 0; ; round++ {
		if round == ssfPollMaxRounds {
			req.MaxEvents = 0
		}
		resp, err := st.poller.Poll(ctx, req)
		if err != nil {
			return err
		}
		if req.MaxEvents == 0 {
			return nil
		}
		req = federation.SETPollRequest{MaxEvents: ssfPollMaxEvents, ReturnImmediately: true}
		for jti, raw := range resp.Sets {
			err := s.process(ctx, upstream, st, raw)
			var se *SETError
			switch {
			case err == nil, errors.Is(err, errSETReplay): // a replay was processed before: its ack was lost
				req.Ack = append(req.Ack, jti)
			case errors.As(err, &se):
				if req.SetErrs == nil {
					req.SetErrs = map[string]federation.SETPollErr{}
				}
				req.SetErrs[jti] = federation.SETPollErr{Err: se.Code, Description: se.Description}
				s.log.InfoContext(ctx, "SSF polled SET refused", "event", "ssf_poll_set_refused", "upstream", upstream,
					"jti", jti, "err", se.Code)
			default:
				s.log.WarnContext(ctx, "SSF polled SET not processed; the transmitter will deliver it again",
					"upstream", upstream, "jti", jti, "err", err)
			}
		}
		if !resp.MoreAvailable || len(resp.Sets) == 0 {
			if len(req.Ack) == 0 && len(req.SetErrs) == 0 {
				return nil
			}
			req.MaxEvents = 0
		}
	}
}
