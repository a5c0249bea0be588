package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	feedClientID = "edge-verifier"
	feedSecret   = "feed secret/with:odd&chars"
)

// feedServer serves a revocation feed as the broker does: entries after the
// cursor, at most limit of them, the highest sequence number, next, an ETag
// and 304 for a caught-up If-None-Match.
type feedServer struct {
	*httptest.Server
	hits     atomic.Int64
	notMod   atomic.Int64
	requests chan feedRequest // every request, when non-nil (buffered)

	mu      sync.Mutex
	entries []feedEntry
	highest int64
	limit   int
	status  int // non-zero: answer with this status
}

type feedRequest struct {
	after       string
	ifNoneMatch string
}

func newFeedServer(t *testing.T) *feedServer {
	t.Helper()
	fs := &feedServer{limit: 1000, requests: make(chan feedRequest, 1000)}
	fs.Server = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	fs.hits.Add(1)
	select {
	case fs.requests <- feedRequest{after: r.URL.Query().Get("after"), ifNoneMatch: r.Header.Get("If-None-Match")}:
	default:
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	id, secret, ok := r.BasicAuth()
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	if !ok || id != feedClientID || secret != feedSecret {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if fs.status != 0 {
		w.WriteHeader(fs.status)
		return
	}
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	page := []feedEntry{}
	for _, e := range fs.entries {
		if e.Seq > after && len(page) < fs.limit {
			page = append(page, e)
		}
	}
	next := max(after, fs.highest)
	if len(page) == fs.limit {
		next = page[len(page)-1].Seq
	}
	etag := `"` + strconv.FormatInt(fs.highest, 10) + `"`
	w.Header().Set("ETag", etag)
	if len(page) == 0 && r.Header.Get("If-None-Match") == etag {
		fs.notMod.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"entries": page, "highest": fs.highest, "next": next})
}

// add appends an entry with the next sequence number.
func (fs *feedServer) add(e feedEntry) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.highest++
	e.Seq = fs.highest
	fs.entries = append(fs.entries, e)
}

func (fs *feedServer) revokeSubject(sub string, notBefore time.Time) {
	fs.add(feedEntry{Kind: "subject", Subject: sub, NotBefore: notBefore.Unix()})
}

func (fs *feedServer) setStatus(status int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.status = status
}

// drain empties the request log.
func (fs *feedServer) drain() {
	for {
		select {
		case <-fs.requests:
		default:
			return
		}
	}
}

func (fs *feedServer) logged() []feedRequest {
	var out []feedRequest
	for {
		select {
		case r := <-fs.requests:
			out = append(out, r)
		default:
			return out
		}
	}
}

// revEnv is a verifier with a key server and a feed. With a zero interval
// the background poller polls once, then not again for 50s (longer than any
// test), and the test polls with pollNow.
type revEnv struct {
	t     *testing.T
	key   testKey
	ks    *keyServer
	feed  *feedServer
	clock *fakeClock
	v     *Verifier
}

func newRevEnv(t *testing.T, interval time.Duration, mutate func(*RevocationConfig)) *revEnv {
	t.Helper()
	e := &revEnv{t: t, key: newKey(t, "k1", "ES256"), clock: newClock()}
	e.ks = newKeyServer(t, e.key)
	e.feed = newFeedServer(t)
	if interval == 0 {
		interval = 50 * time.Second
	}
	rc := &RevocationConfig{URL: e.feed.URL + "/revocations", Interval: interval, MaxStaleness: time.Minute,
		ClientID: feedClientID, ClientSecret: feedSecret}
	if mutate != nil {
		mutate(rc)
	}
	e.v = newVerifier(t, e.ks, e.clock, func(c *Config) { c.Revocation = rc })
	runVerifier(t, e.v)
	select {
	case <-e.v.rev.firstDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the first poll of the revocation feed did not end")
	}
	return e
}

// pollNow is the poll-now hook: one poll, synchronously.
func (e *revEnv) pollNow() error {
	e.t.Helper()
	return e.v.rev.poll(e.t.Context())
}

// token mints a token for sub and sid issued at iat.
func (e *revEnv) token(sub, sid string, iat time.Time) string {
	e.t.Helper()
	return mint(e.t, e.key, nil, with(claims(e.ks.URL, e.clock.Now()), "sub", sub, "sid", sid, "iat", iat.Unix()))
}

func (e *revEnv) wantOK(tok, what string) {
	e.t.Helper()
	if _, err := e.v.Verify(e.t.Context(), tok); err != nil {
		e.t.Fatalf("%s: Verify() = %v, want success", what, err)
	}
}

func (e *revEnv) wantRevoked(tok, what string) {
	e.t.Helper()
	_, err := e.v.Verify(e.t.Context(), tok)
	var ve *Error
	if !errors.As(err, &ve) || ve.Status != http.StatusUnauthorized || ve.Description != "token revoked" || !errors.Is(err, ErrRevoked) {
		e.t.Fatalf("%s: Verify() = %v, want 401 token revoked", what, err)
	}
}

func (e *revEnv) wantStale(tok, what string) {
	e.t.Helper()
	_, err := e.v.Verify(e.t.Context(), tok)
	var ve *Error
	if !errors.As(err, &ve) || ve.Status != http.StatusServiceUnavailable || ve.Code != CodeTemporarilyUnavailable ||
		!errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrRevocationStale) {
		e.t.Fatalf("%s: Verify() = %v, want 503 revocation feed unavailable", what, err)
	}
}

func TestRevokedSubjectRejectedWithinTwoPolls(t *testing.T) {
	const interval = 20 * time.Millisecond
	e := newRevEnv(t, interval, nil)
	now := e.clock.Now()
	alice := e.token("alice", "sid-a", now)
	bob := e.token("bob", "sid-b", now)
	e.wantOK(alice, "alice before the revocation")
	e.wantOK(bob, "bob before the revocation")
	checks := e.v.sigChecks.Load()

	e.feed.drain()
	e.feed.revokeSubject("alice", now.Add(time.Second))
	// Two polls after the revocation was appended, it must be in force.
	deadline := time.After(5 * time.Second)
	for n := 0; n < 2; {
		select {
		case <-e.feed.requests:
			n++
		case <-deadline:
			t.Fatalf("the verifier polled %d times in 5s at an interval of %s", n, interval)
		}
	}
	// The second poll may still be writing its answer's effects: it has
	// ended once the third request arrives, or after a bounded wait.
	select {
	case <-e.feed.requests:
	case <-time.After(time.Second):
	}
	e.wantRevoked(alice, "alice's cached token after the revocation")
	if got := e.v.sigChecks.Load(); got != checks {
		t.Errorf("signature checks = %d, want %d: the rejection must come from the cache-hit path", got, checks)
	}
	e.wantOK(bob, "bob's token")
	e.wantRevoked(e.token("alice", "sid-a2", now), "alice's other uncached token")
	if _, _, n := e.v.RevocationStatus(); n != 1 {
		t.Errorf("RevocationStatus entries = %d, want 1", n)
	}
}

func TestRevokedSessionAndReinstatement(t *testing.T) {
	e := newRevEnv(t, 0, nil)
	now := e.clock.Now()
	nb := now.Add(10 * time.Second)
	e.feed.add(feedEntry{Kind: "session", SessionID: "sid-1", NotBefore: nb.Unix()})
	e.feed.revokeSubject("carol", nb)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	e.wantRevoked(e.token("dave", "sid-1", now), "a token of the ended session")
	e.wantOK(e.token("dave", "sid-2", now), "the same person's other session")
	e.wantOK(e.token("dave", "", now), "a token without sid")

	// Tokens issued at or after the not-before are new: a reinstated
	// person's (or a new session's) tokens pass; earlier ones stay void.
	e.clock.Advance(20 * time.Second)
	e.wantRevoked(e.token("carol", "s", nb.Add(-time.Second)), "carol's token issued before the not-before")
	e.wantOK(e.token("carol", "s", nb), "carol's token issued at the not-before")
	e.wantOK(e.token("carol", "s", nb.Add(time.Second)), "carol's token issued after the not-before")
	e.wantOK(e.token("dave", "sid-1", nb.Add(time.Second)), "a token of sid-1 issued after the not-before")

	// A later entry for the same subject moves the not-before forward.
	e.feed.revokeSubject("carol", nb.Add(5*time.Second))
	e.feed.revokeSubject("carol", nb.Add(2*time.Second)) // older: ignored
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	e.wantRevoked(e.token("carol", "s", nb.Add(4*time.Second)), "carol's token before the second deprovisioning")
}

func TestRevocationCursorAndNotModified(t *testing.T) {
	e := newRevEnv(t, 0, nil)
	e.feed.mu.Lock()
	e.feed.limit = 2
	e.feed.mu.Unlock()
	nb := e.clock.Now().Add(time.Second)
	for i := range 5 {
		e.feed.revokeSubject(fmt.Sprintf("user-%d", i), nb)
	}
	e.feed.drain()
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	var afters []string
	for _, r := range e.feed.logged() {
		afters = append(afters, r.after)
		// The first request may send the ETag of the (empty) first poll.
		if r.after != "0" && r.ifNoneMatch != "" {
			t.Errorf("after=%s sent If-None-Match %q while not caught up", r.after, r.ifNoneMatch)
		}
	}
	if got := strings.Join(afters, ","); got != "0,2,4" {
		t.Errorf("cursors of one poll = %s, want 0,2,4 (pages of 2, then caught up)", got)
	}
	if _, _, n := e.v.RevocationStatus(); n != 5 {
		t.Errorf("entries = %d, want 5", n)
	}

	// Caught up: the next poll asks after=5 with If-None-Match and gets 304,
	// which counts as a successful read.
	e.clock.Advance(30 * time.Second)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	reqs := e.feed.logged()
	if len(reqs) != 1 || reqs[0].after != "5" || reqs[0].ifNoneMatch != `"5"` {
		t.Errorf("caught-up poll sent %+v, want one request after=5 with If-None-Match \"5\"", reqs)
	}
	if e.feed.notMod.Load() != 1 {
		t.Errorf("304 answers = %d, want 1", e.feed.notMod.Load())
	}
	lag, last, _ := e.v.RevocationStatus()
	if lag != 0 || !last.Equal(e.clock.Now()) {
		t.Errorf("RevocationStatus after a 304 = lag %s, last success %s; want 0 and %s", lag, last, e.clock.Now())
	}

	// Entries collected at the broker leave a gap: next jumps to highest.
	e.feed.mu.Lock()
	e.feed.highest = 9
	e.feed.mu.Unlock()
	e.feed.revokeSubject("user-10", nb)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	if reqs := e.feed.logged(); len(reqs) != 1 || reqs[0].after != "5" {
		t.Errorf("poll after the gap sent %+v, want one request after=5", reqs)
	}
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	if reqs := e.feed.logged(); len(reqs) != 1 || reqs[0].after != "10" || reqs[0].ifNoneMatch != `"10"` {
		t.Errorf("next poll sent %+v, want after=10 with If-None-Match \"10\"", reqs)
	}
	e.wantRevoked(e.token("user-10", "", e.clock.Now().Add(-time.Minute)), "user-10")
}

func TestRevocationFeedRestartIsReadAgain(t *testing.T) {
	e := newRevEnv(t, 0, nil)
	nb := e.clock.Now().Add(time.Second)
	for i := range 3 {
		e.feed.revokeSubject(fmt.Sprintf("old-%d", i), nb)
	}
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	// A new broker store: the sequence starts again at 1.
	e.feed.mu.Lock()
	e.feed.entries, e.feed.highest = nil, 0
	e.feed.mu.Unlock()
	e.feed.revokeSubject("new-1", nb)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	e.wantRevoked(e.token("new-1", "", e.clock.Now()), "a subject revoked after the feed restarted")
	e.wantRevoked(e.token("old-0", "", e.clock.Now()), "a subject revoked before")
}

func TestRevocationFailsClosedWhenStale(t *testing.T) {
	e := newRevEnv(t, 0, func(rc *RevocationConfig) { rc.MaxStaleness = time.Minute })
	tok := e.token("alice", "s", e.clock.Now())
	e.wantOK(tok, "fresh feed")
	e.feed.setStatus(http.StatusBadGateway)
	e.clock.Advance(59 * time.Second)
	if err := e.pollNow(); err == nil {
		t.Fatal("poll with the feed failing = nil, want an error")
	}
	e.wantOK(tok, "59s after the last read")
	e.clock.Advance(2 * time.Second)
	e.wantStale(tok, "61s after the last read (cached token)")
	e.wantStale(e.token("bob", "s", e.clock.Now()), "61s after the last read (new token)")
	if n := e.v.RevocationStaleDenials(); n != 2 {
		t.Errorf("RevocationStaleDenials = %d, want 2", n)
	}
	if lag, _, _ := e.v.RevocationStatus(); lag != 61*time.Second {
		t.Errorf("lag = %s, want 61s", lag)
	}
	_, err := e.v.Verify(t.Context(), tok)
	if err == nil || !strings.Contains(err.Error(), "status 502") {
		t.Errorf("stale error = %v, want the last poll's failure as cause", err)
	}

	e.feed.setStatus(0)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	e.wantOK(tok, "after the feed recovered")
}

func TestRevocationNeverReadFailsClosed(t *testing.T) {
	e := newRevEnv(t, 0, func(rc *RevocationConfig) { rc.ClientSecret = "wrong" })
	tok := e.token("alice", "s", e.clock.Now())
	e.wantStale(tok, "a feed that refuses the verifier")
	_, err := e.v.Verify(t.Context(), tok)
	if err == nil || !strings.Contains(err.Error(), "revocationFeed.readers") {
		t.Errorf("error = %v, want the reason (not a reader) in the cause", err)
	}
	if _, last, _ := e.v.RevocationStatus(); !last.IsZero() {
		t.Errorf("last success = %s, want zero", last)
	}
}

func TestRevocationFailOpen(t *testing.T) {
	e := newRevEnv(t, 0, func(rc *RevocationConfig) { rc.OnStale = OnStaleAllow })
	nb := e.clock.Now().Add(time.Second)
	e.feed.revokeSubject("alice", nb)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	e.feed.setStatus(http.StatusInternalServerError)
	e.clock.Advance(10 * time.Minute)
	_ = e.pollNow()
	e.wantOK(e.token("bob", "s", nb.Add(-time.Second)), "fail open with a stale feed")
	e.wantRevoked(e.token("alice", "s", nb.Add(-time.Second)), "fail open still applies known entries")
	if n := e.v.RevocationStaleDenials(); n != 0 {
		t.Errorf("RevocationStaleDenials = %d, want 0 when failing open", n)
	}
}

func TestRevocationEntriesExpire(t *testing.T) {
	e := newRevEnv(t, 0, nil)
	now := e.clock.Now()
	e.feed.add(feedEntry{Kind: "subject", Subject: "alice", NotBefore: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()})
	e.feed.add(feedEntry{Kind: "session", SessionID: "s1", NotBefore: now.Unix()})
	e.feed.add(feedEntry{Kind: "group", Subject: "admins", NotBefore: now.Unix()}) // unknown kind: skipped
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	if _, _, n := e.v.RevocationStatus(); n != 2 {
		t.Fatalf("entries = %d, want 2", n)
	}
	e.clock.Advance(5*time.Minute + DefaultLeeway + time.Second)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	if _, _, n := e.v.RevocationStatus(); n != 1 {
		t.Errorf("entries after alice's entry expired = %d, want 1", n)
	}
}

func TestRevocationConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		rc   RevocationConfig
		want string
	}{
		{RevocationConfig{}, "clientID: required"},
		{RevocationConfig{ClientID: "x", URL: "/revocations"}, "must be an absolute https URL with a host"},
		{RevocationConfig{ClientID: "x", Interval: time.Minute}, "must exceed the interval"},
		{RevocationConfig{ClientID: "x", Interval: -time.Second}, "must be positive"},
	} {
		_, err := New(t.Context(), Config{Issuer: "https://sso.example.com", Audiences: []string{"a"}, Revocation: &tc.rc})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New with %+v = %v, want an error containing %q", tc.rc, err, tc.want)
		}
	}
	rc := RevocationConfig{ClientID: "x"}
	v, err := New(t.Context(), Config{Issuer: "http://127.0.0.1:1/", Audiences: []string{"a"}, Revocation: &rc})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.rev.cfg; got.URL != "http://127.0.0.1:1/revocations" || got.Interval != 5*time.Second || got.MaxStaleness != time.Minute || got.OnStale != OnStaleDeny {
		t.Errorf("defaults = %+v", got)
	}
}

// New starts no poller: the feed is read by Run, which returns nil once its
// context has ended.
func TestRevocationPolledByRun(t *testing.T) {
	e := &revEnv{t: t, key: newKey(t, "k1", "ES256"), clock: newClock()}
	e.ks = newKeyServer(t, e.key)
	e.feed = newFeedServer(t)
	rc := &RevocationConfig{URL: e.feed.URL + "/revocations", Interval: 50 * time.Second, MaxStaleness: time.Minute,
		ClientID: feedClientID, ClientSecret: feedSecret}
	e.v = newVerifier(t, e.ks, e.clock, func(c *Config) { c.Revocation = rc })
	select {
	case <-e.v.rev.firstDone:
		t.Fatal("the feed was polled before Run")
	default:
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.v.Run(ctx) }()
	select {
	case <-e.v.rev.firstDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not poll the revocation feed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run() = %v, want nil once its context ended", err)
	}
}

// A token entry (one access token revoked at the broker's /revoke, by code
// reuse or with its refresh family) voids the token with that jti, whatever
// its iat, on the cache-hit path too, and is forgotten after its expiry.
func TestRevokedTokenByJTI(t *testing.T) {
	e := newRevEnv(t, 0, nil)
	now := e.clock.Now()
	mintJTI := func(jti string) string {
		return mint(t, e.key, nil, with(claims(e.ks.URL, now), "sub", "alice", "sid", "s1", "iat", now.Unix(), "jti", jti))
	}
	revoked, other := mintJTI("jti-1"), mintJTI("jti-2")
	e.wantOK(revoked, "the token before its revocation")
	e.wantOK(other, "another token of the same session")
	checks := e.v.sigChecks.Load()

	// not_before is when it was revoked, after the token's iat: a jti entry
	// does not compare it.
	e.feed.add(feedEntry{Kind: "token", TokenID: "jti-1", NotBefore: now.Add(-time.Hour).Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()})
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	e.wantRevoked(revoked, "the revoked token (cached)")
	if got := e.v.sigChecks.Load(); got != checks {
		t.Errorf("signature checks = %d, want %d: the rejection must come from the cache-hit path", got, checks)
	}
	e.wantOK(other, "the other token")
	if _, _, n := e.v.RevocationStatus(); n != 1 {
		t.Errorf("RevocationStatus entries = %d, want 1", n)
	}
	e.clock.Advance(5*time.Minute + DefaultLeeway + time.Second)
	if err := e.pollNow(); err != nil {
		t.Fatal(err)
	}
	if _, _, n := e.v.RevocationStatus(); n != 0 {
		t.Errorf("entries after the token's entry expired = %d, want 0", n)
	}
}
