package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
)

const ssfPollToken = "ssf-poll-token-0123456789-0123456789-abc"

// pollTransmitter is a transmitter's RFC 8936 poll endpoint: it hands out
// its queued SETs, drops those acknowledged or reported, and records both.
type pollTransmitter struct {
	srv     *httptest.Server
	mu      sync.Mutex
	queue   map[string]string // jti → SET
	acked   []string
	errs    map[string]federation.SETPollErr
	refused int // polls with a wrong token
}

func newPollTransmitter(t *testing.T) *pollTransmitter {
	t.Helper()
	p := &pollTransmitter{queue: map[string]string{}, errs: map[string]federation.SETPollErr{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/poll" {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+ssfPollToken {
			p.refused++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req federation.SETPollRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, jti := range req.Ack {
			p.acked = append(p.acked, jti)
			delete(p.queue, jti)
		}
		for jti, e := range req.SetErrs {
			p.errs[jti] = e
			delete(p.queue, jti)
		}
		sets := map[string]string{}
		for jti, raw := range p.queue {
			if len(sets) == req.MaxEvents {
				break
			}
			sets[jti] = raw
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(federation.SETPollResponse{Sets: sets, MoreAvailable: len(sets) < len(p.queue)})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pollTransmitter) add(jti, raw string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue[jti] = raw
}

// TestSSFPollDelivery: Keyward polls the transmitter (RFC 8936) with its
// bearer token, as serve's Signals.Run does: an account-disabled SET
// deprovisions bob and is acknowledged; a SET for another audience is
// reported in setErrs with invalid_audience and changes nothing; a SET
// delivered again after its ack was lost is acknowledged, not reported.
func TestSSFPollDelivery(t *testing.T) {
	e := newSSFEnv(t)
	e.signInAs(t, "bob")
	sub := broker.SubjectID("corp", "demo-bob")
	issSub := map[string]any{"format": "iss_sub", "iss": e.idps[0].URL(), "sub": "demo-bob"}
	pt := newPollTransmitter(t)
	sig, err := e.b.Broker.NewSignals(broker.SignalsConfig{
		Store: e.b.Store,
		Streams: []broker.SignalsStream{{Upstream: "corp", Verifier: federation.NewSETVerifier(federation.SETConfig{
			Issuer: e.tr.issuer(), JWKSURL: e.tr.srv.URL + "/jwks", Audience: e.issuer, Now: e.clock.Now, Logger: testLogger(t),
		}), Poller: &federation.SETPoller{URL: pt.srv.URL + "/poll", Token: ssfPollToken}, PollInterval: 50 * time.Millisecond}},
		Logger: testLogger(t),
		Now:    e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	disabled := e.tr.sign(t, e.set("p1", issSub, broker.EventAccountDisabled), nil, "secevent+jwt")
	other := e.set("p2", issSub, broker.EventAccountDisabled)
	other["aud"] = "https://other.example"
	pt.add("p1", disabled)
	pt.add("p2", e.tr.sign(t, other, nil, "secevent+jwt"))

	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- sig.Run(ctx) }()
	settled := func() bool {
		pt.mu.Lock()
		defer pt.mu.Unlock()
		return len(pt.queue) == 0
	}
	for deadline := time.Now().Add(10 * time.Second); !settled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the transmitter's queue was not drained: acked %v, errs %v", pt.acked, pt.errs)
		}
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); !s.Disabled || s.DisabledBy != "ssf:corp" {
		t.Errorf("after the polled account-disabled: %+v, want disabled by ssf:corp", s)
	}
	pt.mu.Lock()
	if !slices.Contains(pt.acked, "p1") || slices.Contains(pt.acked, "p2") {
		t.Errorf("acked = %v, want p1 and not p2", pt.acked)
	}
	if e2 := pt.errs["p2"]; e2.Err != "invalid_audience" || e2.Description == "" {
		t.Errorf("setErrs[p2] = %+v, want invalid_audience with a description", e2)
	}
	pt.mu.Unlock()

	// The ack was lost: the transmitter delivers p1 again.
	pt.add("p1", disabled)
	for deadline := time.Now().Add(10 * time.Second); !settled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the redelivered SET was not acknowledged")
		}
	}
	pt.mu.Lock()
	if n := len(slices.DeleteFunc(slices.Clone(pt.acked), func(j string) bool { return j != "p1" })); n != 2 {
		t.Errorf("p1 acknowledged %d times, want 2 (its redelivery too)", n)
	}
	if _, reported := pt.errs["p1"]; reported || pt.refused != 0 {
		t.Errorf("p1 reported as an error (%v) or polls refused (%d)", reported, pt.refused)
	}
	pt.mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}

// TestSSFPollRoundIsBounded: a transmitter that always has more SETs gets
// at most 10 requests for SETs in one round, then one that only
// acknowledges (maxEvents 0) the last answer's.
func TestSSFPollRoundIsBounded(t *testing.T) {
	e := newSSFEnv(t)
	var mu sync.Mutex
	var reqs []federation.SETPollRequest
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req federation.SETPollRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		reqs = append(reqs, req)
		n++
		jti := "b" + strconv.Itoa(n)
		mu.Unlock()
		raw := e.tr.sign(t, e.set(jti, map[string]any{"format": "opaque", "id": "demo-nobody"}, broker.EventAccountDisabled), nil, "secevent+jwt")
		_ = json.NewEncoder(w).Encode(federation.SETPollResponse{Sets: map[string]string{jti: raw}, MoreAvailable: true})
	}))
	defer srv.Close()
	sig, err := e.b.Broker.NewSignals(broker.SignalsConfig{
		Store: e.b.Store,
		Streams: []broker.SignalsStream{{Upstream: "corp", Verifier: federation.NewSETVerifier(federation.SETConfig{
			Issuer: e.tr.issuer(), JWKSURL: e.tr.srv.URL + "/jwks", Audience: e.issuer, Now: e.clock.Now, Logger: testLogger(t),
		}), Poller: &federation.SETPoller{URL: srv.URL, Token: ssfPollToken}}},
		Logger: testLogger(t),
		Now:    e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.PollOnce(t.Context(), "corp"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 11 {
		t.Fatalf("one round sent %d requests, want 11 (10 asking, 1 acknowledging)", len(reqs))
	}
	for i, r := range reqs[:10] {
		if r.MaxEvents != 100 || (i > 0 && !slices.Equal(r.Ack, []string{"b" + strconv.Itoa(i)})) {
			t.Errorf("request %d = %+v, want maxEvents 100 acknowledging b%d", i+1, r, i)
		}
	}
	if last := reqs[10]; last.MaxEvents != 0 || !slices.Equal(last.Ack, []string{"b10"}) {
		t.Errorf("last request = %+v, want maxEvents 0 acknowledging b10", last)
	}
}
