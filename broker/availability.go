package broker

import (
	"github.com/keyward/keyward/federation"
)

// Upstream availability. An upstream whose discovery failed at start
// (*federation.LazyUpstream) is configured but cannot take sign-ins until a
// background retry succeeds. The chooser lists it disabled, choosing it (or
// /authorize when it is the only upstream) is RefusedUpstreamUnavailable (a 503 page in web), and /readyz
// names it. Single sign-on, refresh and token exchange with Keyward's own
// tokens never need the upstream and go on.

// readiness is the optional part of an Upstream that may not be usable yet.
// Ready returns nil when the upstream can take sign-ins; its error is for
// logs only.
type readiness interface {
	Ready() error
}

var (
	_ Upstream  = (*federation.LazyUpstream)(nil)
	_ rechecker = (*federation.LazyUpstream)(nil)
	_ readiness = (*federation.LazyUpstream)(nil)
)

// upstreamReady is nil when up can take sign-ins now.
func upstreamReady(up Upstream) error {
	if r, ok := up.(readiness); ok {
		return r.Ready()
	}
	return nil
}

// UpstreamStatus is whether one upstream can take sign-ins now.
type UpstreamStatus struct {
	ID, Name string
	// Err is nil when the upstream is available; otherwise why not (for
	// logs: it names the issuer and the discovery error, never a secret).
	Err error
}

// UpstreamStatus reports every upstream's availability, in configured
// order.
func (b *Broker) UpstreamStatus() []UpstreamStatus {
	out := make([]UpstreamStatus, len(b.upstreams))
	for i, up := range b.upstreams {
		out[i] = UpstreamStatus{ID: up.ID(), Name: up.Name(), Err: upstreamReady(up)}
	}
	return out
}

// errUpstreamUnavailable refuses a sign-in through an upstream that cannot
// take it now; others says whether the person may choose another upstream.
// cause is only logged.
func errUpstreamUnavailable(up Upstream, others bool, cause error) *Refusal {
	return &Refusal{Kind: RefusedUpstreamUnavailable, Upstream: up.Name(), OtherUpstreams: others, cause: cause}
}
