package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// cancelHooks cancels a request's context at one moment of the token
// request: while a token is signed, or just before or just after the
// store applies the unit of work.
type cancelHooks struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	at     string // "sign", "apply", "applied"
}

func (h *cancelHooks) fire(at string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil && h.at == at {
		h.cancel()
	}
}

type cancelOnSign struct {
	Keys
	h *cancelHooks
}

func (k cancelOnSign) SignAs(ctx context.Context, alg string, claims, header map[string]any) (string, error) {
	tok, err := k.Keys.SignAs(ctx, alg, claims, header)
	k.h.fire("sign")
	return tok, err
}

type cancelOnApply struct {
	Store
	h *cancelHooks
}

func (s cancelOnApply) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	s.h.fire("apply")
	res, err := s.Store.Apply(ctx, b)
	s.h.fire("applied")
	return res, err
}

// TestTokenRequestOfClientGone: a refresh whose client goes away (its
// request context is cancelled) while the tokens are signed, or while the
// unit of work is being applied, stores nothing of it and is logged once,
// at info, with the cause: never as an error. Cancelled once the store
// has committed, it stands whole: the tokens are stored and answered (a
// client that did not receive them retries within the grace period).
func TestTokenRequestOfClientGone(t *testing.T) {
	tests := []struct {
		at     string
		stored bool
	}{
		{"sign", false},
		{"apply", false},
		{"applied", true},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			f := newFixture(t)
			var logs bytes.Buffer
			hooks := &cancelHooks{}
			up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
			b := newTestBroker(t, f, func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c.Keys = cancelOnSign{Keys: c.Keys, h: hooks}
				c.Store = cancelOnApply{Store: c.Store, h: hooks}
			}, up)
			code, _ := signInCode(t, b, up, nil)
			rt := redeem(t, b, code)["refresh_token"].(string)
			sig := rt[strings.LastIndexByte(rt, '.')+1:]
			old, err := f.st.GetGrant(t.Context(), store.GrantRefreshToken, sig)
			if err != nil {
				t.Fatal(err)
			}
			logs.Reset()

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			hooks.mu.Lock()
			hooks.cancel, hooks.at = cancel, tt.at
			hooks.mu.Unlock()
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}
			r := httptest.NewRequestWithContext(ctx, http.MethodPost, testIssuer+"/token", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			b.tokens.Token(ctx, w, r)

			got, err := f.st.GetGrant(t.Context(), store.GrantRefreshToken, sig)
			if err != nil {
				t.Fatal(err)
			}
			n, err := f.st.UpdateGrantsByRequest(t.Context(), old.RequestID, []store.GrantKind{store.GrantRefreshToken},
				func(g store.Grant) (store.Grant, error) { return g, nil })
			if err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			if strings.Contains(out, "level=ERROR") {
				t.Errorf("a client that went away was logged as an error:\n%s", out)
			}
			if tt.stored {
				if got.Active || n != 2 || w.Code != http.StatusOK {
					t.Errorf("cancelled after the commit: presented token active=%v, %d refresh tokens in the family, answer %d; want rotated, 2, 200", got.Active, n, w.Code)
				}
				return
			}
			if !got.Active || n != 1 {
				t.Errorf("cancelled before the commit: presented token active=%v, %d refresh tokens in the family; want it untouched and 1 (nothing applied)", got.Active, n)
			}
			if c := strings.Count(out, "client went away"); c != 1 || !strings.Contains(out, "level=INFO") || !strings.Contains(out, "context canceled") {
				t.Errorf("log has %d lines on the client going away, want 1 at INFO with the cause:\n%s", c, out)
			}
			// The refresh token still works for the client that retries.
			if status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}); status != http.StatusOK {
				t.Errorf("retry after the client went away = %d %v, want 200", status, body)
			}
		})
	}
}

// applyBarrier holds the first n Applies until all n have arrived: the n
// token requests have all read what they redeem before any commits.
type applyBarrier struct {
	Store
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

// newApplyBarrier lets every Apply through until arm.
func newApplyBarrier(st Store) *applyBarrier {
	release := make(chan struct{})
	close(release)
	return &applyBarrier{Store: st, release: release}
}

// arm holds the next n Applies until all n have arrived.
func (s *applyBarrier) arm(n int) {
	s.mu.Lock()
	s.waiting, s.release = n, make(chan struct{})
	s.mu.Unlock()
}

func (s *applyBarrier) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	s.mu.Lock()
	release := s.release
	if s.waiting > 0 {
		s.waiting--
		if s.waiting == 0 {
			close(s.release)
		}
	}
	s.mu.Unlock()
	select {
	case <-release:
	case <-ctx.Done():
	}
	return s.Store.Apply(ctx, b)
}

// TestTokenRaceDecidedAtCommit: token requests that all read the record
// they redeem before any of them commits. Of three refreshes with one
// token, the rotation and the one grace use commit and the third finds
// the precondition gone at its commit: it revokes the family and gets
// invalid_grant. Of two redemptions of one code, one commits; the other
// revokes what the winner got.
func TestTokenRaceDecidedAtCommit(t *testing.T) {
	tests := []struct {
		name     string
		n, wins  int
		desc     string
		formFrom func(t *testing.T, b *Broker, up *fakeUpstream) url.Values
	}{
		{"refresh", 3, 2, descRefreshRaced, func(t *testing.T, b *Broker, up *fakeUpstream) url.Values {
			code, _ := signInCode(t, b, up, nil)
			rt := redeem(t, b, code)["refresh_token"].(string)
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}}
		}},
		{"code", 2, 1, descCodeRaced, func(t *testing.T, b *Broker, up *fakeUpstream) url.Values {
			code, _ := signInCode(t, b, up, nil)
			return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "client_id": {"app"}, "code_verifier": {testVerifier}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
			var barrier *applyBarrier
			b := newTestBroker(t, f, func(c *Config) {
				barrier = newApplyBarrier(c.Store)
				c.Store = barrier
			}, up)
			form := tt.formFrom(t, b, up)
			barrier.arm(tt.n)

			type answer struct {
				status int
				body   map[string]any
			}
			answers := make([]answer, tt.n)
			var wg sync.WaitGroup
			for i := range tt.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, testIssuer+"/token", strings.NewReader(form.Encode()))
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					w := httptest.NewRecorder()
					b.tokens.Token(t.Context(), w, r)
					var body map[string]any
					_ = json.Unmarshal(w.Body.Bytes(), &body)
					answers[i] = answer{w.Code, body}
				}()
			}
			wg.Wait()
			var won []map[string]any
			for i, a := range answers {
				switch {
				case a.status == http.StatusOK:
					won = append(won, a.body)
				case a.status != http.StatusBadRequest || a.body["error"] != "invalid_grant" || a.body["error_description"] != tt.desc:
					t.Errorf("request %d = %d %v, want 200 or 400 invalid_grant %q", i, a.status, a.body, tt.desc)
				}
			}
			if len(won) != tt.wins {
				t.Fatalf("%d of %d requests succeeded, want %d", len(won), tt.n, tt.wins)
			}
			for i, w := range won {
				status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w["refresh_token"].(string)}, "client_id": {"app"}})
				if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
					t.Errorf("winner %d's refresh token after the race = %d %v, want invalid_grant (family revoked)", i, status, body)
				}
			}
		})
	}
}

// cancelOnRead cancels the request once the refresh token sig has been
// read: a client that hangs up right after presenting it.
type cancelOnRead struct {
	Store
	mu     sync.Mutex
	sig    string
	cancel context.CancelFunc
}

func (s *cancelOnRead) GetGrant(ctx context.Context, kind store.GrantKind, sig string) (store.Grant, error) {
	g, err := s.Store.GetGrant(ctx, kind, sig)
	s.mu.Lock()
	if kind == store.GrantRefreshToken && sig == s.sig && s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	return g, err
}

// TestRefreshReuseRevokesThoughClientHangsUp: a rotated refresh token
// presented past its grace window revokes the family even when the client
// hangs up as soon as it has been read.
func TestRefreshReuseRevokesThoughClientHangsUp(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	var st *cancelOnRead
	b := newTestBroker(t, f, func(c *Config) {
		st = &cancelOnRead{Store: c.Store}
		c.Store = st
	}, up)
	code, _ := signInCode(t, b, up, nil)
	rt0 := redeem(t, b, code)["refresh_token"].(string)
	status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt0}, "client_id": {"app"}})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, body)
	}
	rt1 := body["refresh_token"].(string)
	f.now = f.now.Add(time.Hour) // past the grace window

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st.mu.Lock()
	st.sig, st.cancel = rt0[strings.LastIndexByte(rt0, '.')+1:], cancel
	st.mu.Unlock()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt0}, "client_id": {"app"}}
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, testIssuer+"/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b.tokens.Token(ctx, httptest.NewRecorder(), r)

	if ctx.Err() == nil {
		t.Fatal("the request was never cancelled: the refresh token was not read")
	}
	st.mu.Lock()
	st.cancel = nil
	st.mu.Unlock()
	if status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}, "client_id": {"app"}}); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("the family's newest refresh token after a reuse whose client hung up = %d %v, want 400 invalid_grant", status, body)
	}
}
