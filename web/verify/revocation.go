package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RevocationConfig turns on the broker's revocation feed (GET /revocations):
// the Verifier polls it and rejects a token whose sub, or sid, has an entry
// with a not-before later than the token's iat, or whose jti has an entry
// (one revoked access token), even on a cache hit. The
// feed is readable only by the clients the broker lists as readers
// (revocationFeed.readers in keyward.yaml).
type RevocationConfig struct {
	// URL of the feed: https, or http on a loopback host. Default: Issuer +
	// "/revocations".
	URL string `yaml:"url,omitempty"`
	// Interval between polls. Default: 5s; in verify.yaml at least 1s and at
	// most 5m.
	Interval time.Duration `yaml:"interval,omitempty"`
	// MaxStaleness: once the feed has not been read successfully for longer
	// than this (or was never read), OnStale decides. Default: 60s; must
	// exceed Interval.
	MaxStaleness time.Duration `yaml:"maxStaleness,omitempty"`
	// OnStale is OnStaleDeny (Verify fails closed with a 503 that matches
	// ErrUnavailable and ErrRevocationStale) or OnStaleAllow (keep accepting
	// tokens, applying the entries already read: fail open). Default: deny.
	OnStale string `yaml:"onStale,omitempty"`
	// ClientID and ClientSecret authenticate the verifier at the feed with
	// HTTP Basic (form-encoded, as at /token). ClientID is required: a
	// client listed in revocationFeed.readers of keyward.yaml.
	ClientID     string `yaml:"clientID"`
	ClientSecret string `yaml:"-"`
	// ClientSecretFile names the file holding ClientSecret; keyward verify
	// reads it. Required in verify.yaml.
	ClientSecretFile string `yaml:"clientSecretFile"`
	// HTTPClient reads the feed. Default: Config.HTTPClient.
	HTTPClient *http.Client `yaml:"-"`
}

const (
	DefaultRevocationInterval = 5 * time.Second
	DefaultMaxStaleness       = time.Minute
	maxFeedBytes              = 16 << 20
	maxFeedPagesPerPoll       = 1000
)

// ErrRevoked is the cause of the 401 for a token the revocation feed voids.
var ErrRevoked = errors.New("verify: token revoked by the revocation feed")

// ErrRevocationStale is the cause of the 503 returned while the revocation
// feed is stale and the verifier fails closed.
var ErrRevocationStale = errors.New("verify: revocation feed stale")

var errRevoked = invalidToken("token revoked", ErrRevoked)

// revocations polls the feed and answers, without locks, whether a token is
// revoked and whether the feed is fresh enough to trust.
type revocations struct {
	cfg     RevocationConfig
	leeway  time.Duration
	now     func() time.Time
	started time.Time

	state       atomic.Pointer[revState] // published snapshot; never nil after New
	lastSuccess atomic.Int64             // UnixNano of the last complete read; 0: never
	lastErr     atomic.Pointer[error]    // of the last failed poll; nil after a success
	firstDone   chan struct{}            // closed once the first poll has ended
	stale       atomic.Int64             // tokens denied because the feed was stale

	mu      sync.Mutex // one poll at a time; guards the fields below
	cursor  int64
	highest int64
	etag    string
	work    revState // the poller's own copy; published as a clone
}

// revState is one immutable snapshot of the feed, keyed by sub, by sid and
// by jti. A jti entry voids that token whatever its iat; it is kept until
// the token's expiry (the entry's expires_at).
type revState struct {
	subjects map[string]revEntry
	sessions map[string]revEntry
	tokens   map[string]revEntry
}

func newRevState() revState {
	return revState{subjects: map[string]revEntry{}, sessions: map[string]revEntry{}, tokens: map[string]revEntry{}}
}

type revEntry struct {
	notBefore time.Time
	expiresAt time.Time // zero: never forgotten
}

func newRevocations(cfg RevocationConfig, leeway time.Duration, now func() time.Time) *revocations {
	r := &revocations{
		cfg: cfg, leeway: leeway, now: now, started: now(),
		firstDone: make(chan struct{}),
		work:      newRevState(),
	}
	empty := newRevState()
	r.state.Store(&empty)
	return r
}

// run polls until ctx ends: at once, then every Interval after the end of
// the previous poll.
func (r *revocations) run(ctx context.Context) {
	_ = r.poll(ctx)
	close(r.firstDone)
	t := time.NewTimer(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = r.poll(ctx)
		t.Reset(r.cfg.Interval)
	}
}

// check returns errRevoked when the feed voids c, else a 503 when the feed
// is stale and the verifier fails closed, else nil.
func (r *revocations) check(ctx context.Context, c *Claims, now time.Time) error {
	st := r.state.Load()
	if e, ok := st.subjects[c.Subject]; ok && e.notBefore.After(c.IssuedAt) {
		return errRevoked
	}
	if c.SessionID != "" {
		if e, ok := st.sessions[c.SessionID]; ok && e.notBefore.After(c.IssuedAt) {
			return errRevoked
		}
	}
	if c.JTI != "" {
		if _, ok := st.tokens[c.JTI]; ok {
			return errRevoked
		}
	}
	if r.cfg.OnStale == OnStaleAllow || r.fresh(ctx, now) {
		return nil
	}
	r.stale.Add(1)
	cause := ErrRevocationStale
	if p := r.lastErr.Load(); p != nil {
		cause = fmt.Errorf("%w: %w", ErrRevocationStale, *p)
	}
	return unavailable("revocation feed unavailable", cause)
}

// fresh reports whether the feed was read completely within MaxStaleness.
// Before the first poll has ended it waits for it (bounded by ctx), so a
// verifier that has just started does not refuse its first requests.
func (r *revocations) fresh(ctx context.Context, now time.Time) bool {
	ls := r.lastSuccess.Load()
	if ls == 0 {
		select {
		case <-r.firstDone:
		case <-ctx.Done():
			return false
		}
		if ls = r.lastSuccess.Load(); ls == 0 {
			return false
		}
	}
	return now.Sub(time.Unix(0, ls)) <= r.cfg.MaxStaleness
}

// poll reads the feed from the cursor until it has caught up, then
// publishes the new snapshot. It runs one at a time.
func (r *revocations) poll(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.now()
	changed := false
	var err error
	caughtUp := false
	for range maxFeedPagesPerPoll {
		var p *feedPage
		if p, err = r.fetch(ctx); err != nil {
			break
		}
		if p == nil { // 304: nothing after the cursor
			caughtUp = true
			break
		}
		if p.Highest < r.cursor {
			// The feed restarted (a new or restored broker store): read it
			// again from the start, keeping what is known.
			r.cursor, r.highest, r.etag = 0, 0, ""
			continue
		}
		for _, e := range p.Entries {
			if e.Seq > r.cursor && r.apply(e) {
				changed = true
			}
		}
		next := min(max(p.Next, r.cursor), p.Highest)
		progressed := next > r.cursor
		r.cursor, r.highest, r.etag = next, p.Highest, p.etag
		if r.cursor >= r.highest || !progressed {
			caughtUp = true
			break
		}
	}
	if r.prune(start) {
		changed = true
	}
	if changed {
		r.state.Store(&revState{subjects: cloneEntries(r.work.subjects), sessions: cloneEntries(r.work.sessions), tokens: cloneEntries(r.work.tokens)})
	}
	switch {
	case err != nil:
		r.lastErr.Store(&err)
		return err
	case caughtUp:
		r.lastErr.Store(nil)
		r.lastSuccess.Store(start.UnixNano())
	}
	return nil
}

// apply merges one entry into the working maps: the latest not-before wins,
// and the entry is kept as long as the longest-lived one asks.
func (r *revocations) apply(e feedEntry) bool {
	var m map[string]revEntry
	var key string
	switch e.Kind {
	case "subject":
		m, key = r.work.subjects, e.Subject
	case "session":
		m, key = r.work.sessions, e.SessionID
	case "token":
		m, key = r.work.tokens, e.TokenID
	default:
		return false // a kind from a newer broker: not understood, not applied
	}
	if key == "" {
		return false
	}
	ne := revEntry{notBefore: time.Unix(e.NotBefore, 0)}
	if e.ExpiresAt > 0 {
		ne.expiresAt = time.Unix(e.ExpiresAt, 0)
	}
	if old, ok := m[key]; ok {
		if old.notBefore.After(ne.notBefore) {
			ne.notBefore = old.notBefore
		}
		if old.expiresAt.IsZero() || (!ne.expiresAt.IsZero() && old.expiresAt.After(ne.expiresAt)) {
			ne.expiresAt = old.expiresAt
		}
		if old == ne {
			return false
		}
	}
	m[key] = ne
	return true
}

// prune forgets entries past their expiry (plus leeway: a token is accepted
// that long after its exp).
func (r *revocations) prune(now time.Time) bool {
	pruned := false
	for _, m := range []map[string]revEntry{r.work.subjects, r.work.sessions, r.work.tokens} {
		for k, e := range m {
			if !e.expiresAt.IsZero() && now.After(e.expiresAt.Add(r.leeway)) {
				delete(m, k)
				pruned = true
			}
		}
	}
	return pruned
}

func cloneEntries(m map[string]revEntry) map[string]revEntry {
	out := make(map[string]revEntry, len(m))
	for k, e := range m {
		out[k] = e
	}
	return out
}

type feedEntry struct {
	Seq       int64  `json:"seq"`
	Kind      string `json:"kind"`
	Subject   string `json:"sub"`
	SessionID string `json:"sid"`
	TokenID   string `json:"jti"`
	NotBefore int64  `json:"not_before"`
	ExpiresAt int64  `json:"expires_at"`
}

type feedPage struct {
	Entries []feedEntry `json:"entries"`
	Highest int64       `json:"highest"`
	Next    int64       `json:"next"`
	etag    string
}

// fetch reads one page after the cursor; nil without error means 304. It
// sends If-None-Match only when the cursor has caught up with the last
// answer, whose ETag then describes this very URL.
func (r *revocations) fetch(ctx context.Context) (*feedPage, error) {
	if r.cfg.HTTPClient.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	u, err := url.Parse(r.cfg.URL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("after", strconv.FormatInt(r.cursor, 10))
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(r.cfg.ClientID), url.QueryEscape(r.cfg.ClientSecret))
	if r.etag != "" && r.cursor == r.highest {
		req.Header.Set("If-None-Match", r.etag)
	}
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("revocation feed: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("revocation feed: status %d: the broker refuses client %q (is it in revocationFeed.readers, with this secret?)", resp.StatusCode, r.cfg.ClientID)
	default:
		return nil, fmt.Errorf("revocation feed: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFeedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("revocation feed: read: %w", err)
	}
	if len(body) > maxFeedBytes {
		return nil, fmt.Errorf("revocation feed: body larger than %d bytes", maxFeedBytes)
	}
	var p feedPage
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("revocation feed: parse: %w", err)
	}
	if p.Highest < 0 || p.Next < 0 {
		return nil, errors.New("revocation feed: negative sequence number")
	}
	p.etag = resp.Header.Get("ETag")
	return &p, nil
}

// status is RevocationStatus.
func (r *revocations) status(now time.Time) (lag time.Duration, lastSuccess time.Time, entries int) {
	st := r.state.Load()
	entries = len(st.subjects) + len(st.sessions) + len(st.tokens)
	if ls := r.lastSuccess.Load(); ls != 0 {
		lastSuccess = time.Unix(0, ls)
		return max(now.Sub(lastSuccess), 0), lastSuccess, entries
	}
	return max(now.Sub(r.started), 0), time.Time{}, entries
}

// RevocationStatus reports the revocation feed for metrics: lag is the time
// since the feed was last read completely (since New when it never was),
// lastSuccess when that was (zero: never), entries how many subjects,
// sessions and tokens are revoked now. All zero without a revocation feed.
func (v *Verifier) RevocationStatus() (lag time.Duration, lastSuccess time.Time, entries int) {
	if v.rev == nil {
		return 0, time.Time{}, 0
	}
	return v.rev.status(v.now())
}

// RevocationStaleDenials counts the tokens refused with a 503 because the
// revocation feed was stale (fail closed); 0 without a feed.
func (v *Verifier) RevocationStaleDenials() int64 {
	if v.rev == nil {
		return 0
	}
	return v.rev.stale.Load()
}
