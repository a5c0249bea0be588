package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web"
)

const recheckInterval = time.Minute

// tokenRecorder remembers the refresh tokens the upstream hands out.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/token") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(body, &m) == nil && m.RefreshToken != "" {
		r.mu.Lock()
		r.tokens = append(r.tokens, m.RefreshToken)
		r.mu.Unlock()
	}
	return resp, nil
}

func (r *tokenRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

// Re-check timing of the test broker: re-checked every recheckInterval,
// ended once the upstream has not vouched for recheckMaxAge, a re-check
// given up after recheckTimeout.
const (
	recheckMaxAge  = 10 * time.Minute
	recheckTimeout = 300 * time.Millisecond
)

// recheckOptions are the optional parts of a re-check test broker.
type recheckOptions struct {
	rec     *tokenRecorder       // sees the upstream's token answers; default a new one
	log     io.Writer            // receives the broker's log as JSON
	metrics *prometheus.Registry // receives the web handler's metrics
}

// newRecheckEnv is a broker whose upstream corp asks for offline_access
// and is re-checked every recheckInterval; dir holds the bbolt file.
func newRecheckEnv(t *testing.T, rec *tokenRecorder) (e *env, dir string) {
	t.Helper()
	return newRecheckEnvWith(t, recheckOptions{rec: rec})
}

func newRecheckEnvWith(t *testing.T, o recheckOptions) (e *env, dir string) {
	t.Helper()
	if o.rec == nil {
		o.rec = &tokenRecorder{}
	}
	var logger *slog.Logger
	if o.log != nil {
		logger = slog.New(slog.NewJSONHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, dir = &env{t: t, clock: &clock{}}, t.TempDir()
	e.b = brokertest.New(t, brokertest.Options{
		Dir:       dir,
		NoSync:    true,
		AutoLogin: "alice",
		Logger:    logger,
		Clients: []broker.Client{
			{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}},
			{ID: app2ID, Name: "Second App", Secret: app2Secret, RedirectURIs: []string{app2Redir}},
		},
		Now: e.clock.Now,
		Broker: func(bc *broker.Config) {
			old := bc.Upstreams[0]
			up, err := federation.Config{
				ID: old.ID(), Name: old.Name(), Issuer: old.Issuer(),
				ClientID: brokertest.UpstreamClientID, ClientSecret: brokertest.UpstreamSecret,
				RedirectURL:     bc.Issuer + "/callback",
				Scopes:          []string{"openid", "email", "profile", "groups", "offline_access"},
				RecheckInterval: config.Duration(recheckInterval),
				RecheckMaxAge:   config.Duration(recheckMaxAge),
			}.Open(t.Context(), &http.Client{Transport: o.rec, Timeout: 10 * time.Second}, testLogger(t))
			if err != nil {
				t.Fatalf("open upstream: %v", err)
			}
			bc.Upstreams[0] = up
			bc.UpstreamTokenKey = bytes.Repeat([]byte{7}, 32)
			bc.RecheckTimeout = recheckTimeout
		},
		Web: func(wc *web.Config) {
			if o.metrics != nil {
				wc.Registerer = o.metrics
			}
		},
	})
	e.idps, e.issuer = e.b.IdPs, e.b.Issuer
	e.store, e.keys = e.b.Store, e.b.Keys
	return e, dir
}

func onlySession(t *testing.T, e *env) store.Session {
	t.Helper()
	list, err := e.store.ListSessions(t.Context(), "")
	if err != nil || len(list) != 1 {
		t.Fatalf("ListSessions = %d sessions, %v; want 1", len(list), err)
	}
	return list[0]
}

func TestUpstreamRecheck(t *testing.T) {
	rec := &tokenRecorder{}
	e, dir := newRecheckEnv(t, rec)
	idp := e.idps[0]
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	rt := tok.RefreshToken

	sess := onlySession(t, e)
	upTokens := rec.all()
	if len(upTokens) != 1 || len(sess.UpstreamRefreshToken) == 0 || sess.UpstreamCheckedAt.IsZero() {
		t.Fatalf("after sign-in: upstream refresh tokens %d, stored sealed token %d bytes, checked at %v; want one, sealed, set",
			len(upTokens), len(sess.UpstreamRefreshToken), sess.UpstreamCheckedAt)
	}
	assertNotStored(t, dir, sess, upTokens[0])

	refresh := func(want int) map[string]any {
		t.Helper()
		status, body := c.refresh(rt)
		if status != want {
			t.Fatalf("refresh = %d %v, want %d", status, body, want)
		}
		if status == http.StatusOK {
			rt = body["refresh_token"].(string)
		}
		return body
	}
	hits := idp.Hits("token")
	wantHits := func(n int64, why string) {
		t.Helper()
		if got := idp.Hits("token") - hits; got != n {
			t.Fatalf("%s: upstream token requests = %d, want %d", why, got, n)
		}
		hits = idp.Hits("token")
	}

	// Within the interval: no upstream call.
	refresh(http.StatusOK)
	wantHits(0, "refresh within the interval")

	// After it: the upstream grant is refreshed (a refresh grant) and the
	// rotated token kept, sealed.
	e.clock.Advance(recheckInterval + time.Second)
	refresh(http.StatusOK)
	wantHits(1, "refresh after the interval")
	after := onlySession(t, e)
	if !after.UpstreamCheckedAt.After(sess.UpstreamCheckedAt) || bytes.Equal(after.UpstreamRefreshToken, sess.UpstreamRefreshToken) {
		t.Errorf("after the re-check: checked at %v (was %v), sealed token changed %v; want later and changed",
			after.UpstreamCheckedAt, sess.UpstreamCheckedAt, !bytes.Equal(after.UpstreamRefreshToken, sess.UpstreamRefreshToken))
	}
	if toks := rec.all(); len(toks) != 2 {
		t.Fatalf("upstream refresh tokens = %d, want 2 (rotated by the re-check)", len(toks))
	} else {
		assertNotStored(t, dir, after, toks[1])
	}
	refresh(http.StatusOK)
	wantHits(0, "refresh right after a re-check")

	// An upstream failure says nothing about the person: the refresh goes
	// on, and once the upstream's back-off (30 s) has passed the next one
	// tries again; during it nobody waits on an upstream known to be down.
	e.clock.Advance(recheckInterval + time.Second)
	idp.FailToken(http.StatusInternalServerError)
	refresh(http.StatusOK)
	wantHits(1, "refresh with the upstream failing")
	idp.FailToken(0)
	onlySession(t, e)
	refresh(http.StatusOK)
	wantHits(0, "refresh during the upstream's back-off")
	e.clock.Advance(31 * time.Second)
	refresh(http.StatusOK)
	wantHits(1, "refresh after the upstream failure")

	// The upstream disables the person: the next re-check ends the session.
	if n := idp.RevokeRefreshTokens("alice"); n == 0 {
		t.Fatal("fake IdP had no refresh token of alice")
	}
	e.clock.Advance(recheckInterval + time.Second)
	body := refresh(http.StatusBadRequest)
	wantHits(1, "refresh with the upstream refusing")
	if body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "no longer accepts") {
		t.Errorf("refused refresh = %v, want invalid_grant saying the identity provider no longer accepts the person", body)
	}
	if _, err := e.store.GetSession(t.Context(), sess.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession after the refusal = %v, want ErrNotFound", err)
	}
	revs, _, err := e.store.ListRevocations(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range revs {
		found = found || (r.Kind == store.RevokeSession && r.SessionID == sess.ID)
	}
	if !found {
		t.Errorf("revocation feed %+v has no session entry for %s", revs, sess.ID)
	}
	refresh(http.StatusBadRequest) // the family is gone for good
	wantHits(0, "refresh after the session ended")
}

// assertNotStored checks that the upstream refresh token is in neither the
// record nor the bbolt file, raw or base64.
func assertNotStored(t *testing.T, dir string, sess store.Session, token string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "keyward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("empty bbolt file")
	}
	for _, form := range []string{token, base64.StdEncoding.EncodeToString([]byte(token)), base64.RawStdEncoding.EncodeToString([]byte(token))} {
		if bytes.Contains(raw, []byte(form)) || bytes.Contains(sess.UpstreamRefreshToken, []byte(form)) {
			t.Errorf("the upstream refresh token is stored in plaintext (%q)", form)
		}
	}
}

func TestRecheckConfigNeedsOfflineAccess(t *testing.T) {
	c := federation.Config{
		ID: "corp", Issuer: "https://idp.example.com", ClientID: "k", ClientSecret: "s",
		RedirectURL: "https://sso.example.com/callback", RecheckInterval: config.Duration(time.Minute),
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "offline_access") {
		t.Errorf("Validate without offline_access = %v, want an error naming offline_access", err)
	}
	c.Scopes = []string{"openid", "offline_access"}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with offline_access = %v", err)
	}
}

// TestRecheckAfterSessionEnded: once the Keyward session that holds the
// upstream's refresh token is over, a re-checked upstream's grant cannot be
// re-checked, so its refresh is refused (sign in again) instead of going on
// unchecked for the rest of the family's lifetime. An upstream without
// re-checks keeps refreshing.
func TestRecheckAfterSessionEnded(t *testing.T) {
	past := 24*time.Hour + time.Minute // the default session lifetime, and then some

	e, _ := newRecheckEnv(t, &tokenRecorder{})
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	hits := e.idps[0].Hits("token")
	e.clock.Advance(past)
	status, body := c.refresh(tok.RefreshToken)
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(body["error_description"]), "sign in again") {
		t.Fatalf("refresh after the session ended = %d (error %v: %v), want 400 invalid_grant asking to sign in again", status, body["error"], body["error_description"])
	}
	if n := e.idps[0].Hits("token") - hits; n != 0 {
		t.Errorf("upstream token requests = %d, want 0 (nothing to re-check with)", n)
	}
	if status, _ := c.refresh(tok.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("second refresh = %d, want 400: the family is revoked", status)
	}

	plain := newEnv(t, envOptions{})
	pc := plain.client(appID, appSecret, appRedir, nil)
	ptok, _ := pc.signIn()
	plain.clock.Advance(past)
	if status, body := pc.refresh(ptok.RefreshToken); status != http.StatusOK {
		t.Errorf("refresh without re-checks after the session ended = %d (error %v: %v), want 200", status, body["error"], body["error_description"])
	}
}

// TestRecheckUpstreamAnswers: what each answer of the upstream to the
// re-check does. invalid_grant ends the session at once. Everything else
// says nothing about the person and the refresh goes on, until the
// upstream has not vouched for longer than recheckMaxAge: then the session
// ends too, with an audit reason saying since when and why. Dex's 500
// invalid_request for a deleted person is one of those.
func TestRecheckUpstreamAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer fakeidp.RefreshAnswer
		// endsAtOnce: the first re-check ends the session.
		endsAtOnce bool
		// clientRejected: Keyward's credentials were refused (metric,
		// Error log).
		clientRejected bool
		// lastAttempt is in the audit reason.
		lastAttempt string
	}{
		{name: "invalid_grant", answer: fakeidp.RefreshInvalidGrant, endsAtOnce: true},
		{name: "Dex 500 invalid_request", answer: fakeidp.RefreshDexDeletedUser, lastAttempt: "HTTP 500 invalid_request"},
		{name: "invalid_client", answer: fakeidp.RefreshInvalidClient, clientRejected: true, lastAttempt: "HTTP 401 invalid_client"},
		{name: "unauthorized_client", answer: fakeidp.RefreshUnauthorizedClient, clientRejected: true, lastAttempt: "HTTP 400 unauthorized_client"},
		{name: "503", answer: fakeidp.RefreshUnavailable, lastAttempt: "HTTP 503"},
		{name: "timeout", answer: fakeidp.RefreshHang, lastAttempt: "no usable answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log, reg := &lockedBuffer{}, prometheus.NewRegistry()
			e, _ := newRecheckEnvWith(t, recheckOptions{log: log, metrics: reg})
			idp := e.idps[0]
			c := e.client(appID, appSecret, appRedir, nil)
			tok, _ := c.signIn()
			rt := tok.RefreshToken
			sess := onlySession(t, e)
			refresh := func(when string, want int) map[string]any {
				t.Helper()
				status, body := c.refresh(rt)
				if status != want {
					t.Fatalf("refresh %s = %d (error %v: %v), want %d", when, status, body["error"], body["error_description"], want)
				}
				if status == http.StatusOK {
					rt = body["refresh_token"].(string)
				}
				return body
			}

			idp.SetRefreshAnswer(tc.answer)
			e.clock.Advance(recheckInterval + time.Second)
			hits := idp.Hits("token")
			if tc.endsAtOnce {
				body := refresh("at the first re-check", http.StatusBadRequest)
				if body["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(body["error_description"]), "no longer accepts") {
					t.Errorf("refused refresh = %v, want invalid_grant saying the identity provider no longer accepts the person", body)
				}
				wantEnded(t, e, sess.ID, "refused the re-check (invalid_grant)")
				return
			}
			refresh("at the first failed re-check", http.StatusOK)
			if n := idp.Hits("token") - hits; n != 1 {
				t.Errorf("upstream token requests at the re-check = %d, want 1", n)
			}
			if got := recheckMetric(t, reg, "keyward_upstream_client_rejected", ""); got != b2f(tc.clientRejected) {
				t.Errorf("keyward_upstream_client_rejected{upstream=corp} = %v, want %v", got, b2f(tc.clientRejected))
			}
			if tc.clientRejected {
				if got := recheckMetric(t, reg, "keyward_upstream_recheck_total", broker.RecheckClientRejected); got != 1 {
					t.Errorf(`keyward_upstream_recheck_total{result="client_rejected"} = %v, want 1`, got)
				}
				if !strings.Contains(log.String(), `"level":"ERROR"`) || !strings.Contains(log.String(), `"event":"upstream_recheck_client_rejected"`) {
					t.Errorf("no Error log line with event upstream_recheck_client_rejected in:\n%s", log.String())
				}
			}

			// Up to the maximum age the session lives, and every use tries
			// again.
			e.clock.Advance(recheckMaxAge - recheckInterval - 2*time.Second)
			hits = idp.Hits("token")
			refresh("just within the maximum age", http.StatusOK)
			if n := idp.Hits("token") - hits; n != 1 {
				t.Errorf("upstream token requests at the retry = %d, want 1", n)
			}
			onlySession(t, e)

			// Past it, the next use ends the session.
			e.clock.Advance(2 * time.Second)
			body := refresh("past the maximum age", http.StatusBadRequest)
			if body["error"] != "invalid_grant" || !strings.Contains(fmt.Sprint(body["error_description"]), "too long") {
				t.Errorf("refresh past the maximum age = %v, want invalid_grant saying the person was not confirmed for too long", body)
			}
			since := sess.UpstreamCheckedAt.UTC().Format(time.RFC3339)
			wantEnded(t, e, sess.ID, "upstream re-check not passed since "+since, "recheckMaxAge 10m0s", tc.lastAttempt)
			if got := recheckMetric(t, reg, "keyward_upstream_recheck_total", broker.RecheckMaxAgeExceeded); got != 1 {
				t.Errorf(`keyward_upstream_recheck_total{result="max_age"} = %v, want 1`, got)
			}
			refresh("after the session ended", http.StatusBadRequest)
		})
	}
}

// wantEnded checks that Keyward session sid has ended as RevokeSession
// ends one: record gone, a session entry in the revocation feed, and an
// audit event by the re-check whose reason holds every one of why.
func wantEnded(t *testing.T, e *env, sid string, why ...string) {
	t.Helper()
	if _, err := e.store.GetSession(t.Context(), sid); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession after the session ended = %v, want ErrNotFound", err)
	}
	revs, _, err := e.store.ListRevocations(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.Kind == store.RevokeSession && r.SessionID == sid }) {
		t.Errorf("revocation feed %+v has no session entry for the ended session", revs)
	}
	events, err := e.store.ListAudit(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(events, func(ev store.AuditEvent) bool {
		return ev.Action == broker.ActionRevokeSession && ev.Target == sid && ev.Actor == "keyward:upstream-recheck"
	})
	if i < 0 {
		t.Fatalf("audit trail %+v has no session.revoke by keyward:upstream-recheck", events)
	}
	for _, w := range why {
		if !strings.Contains(events[i].Reason, w) {
			t.Errorf("audit reason %q does not say %q", events[i].Reason, w)
		}
	}
}

// recheckMetric reads keyward_upstream_recheck_total{upstream=corp,
// result=result}, or keyward_upstream_client_rejected{upstream=corp} for
// result "" (-1 if absent).
func recheckMetric(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["upstream"] != "corp" || labels["result"] != result {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestRecheckSessionWithoutUpstreamToken: a session of a re-checked
// upstream that holds no upstream refresh token (signed in before the
// re-check was turned on, or the upstream sent none) cannot be re-checked:
// it goes on without upstream calls until recheckMaxAge after sign-in,
// then ends.
func TestRecheckSessionWithoutUpstreamToken(t *testing.T) {
	e, _ := newRecheckEnv(t, nil)
	c := e.client(appID, appSecret, appRedir, nil)
	tok, _ := c.signIn()
	sess := onlySession(t, e)
	if err := e.store.UpdateSession(t.Context(), sess.ID, func(s store.Session) (store.Session, error) {
		s.UpstreamRefreshToken = nil
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	rt, hits := tok.RefreshToken, e.idps[0].Hits("token")
	e.clock.Advance(recheckMaxAge - time.Second)
	status, body := c.refresh(rt)
	if status != http.StatusOK {
		t.Fatalf("refresh within the maximum age = %d (error %v), want 200", status, body["error"])
	}
	e.clock.Advance(2 * time.Second)
	if status, body = c.refresh(body["refresh_token"].(string)); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh past the maximum age = %d (error %v), want 400 invalid_grant", status, body["error"])
	}
	if n := e.idps[0].Hits("token") - hits; n != 0 {
		t.Errorf("upstream token requests = %d, want 0 (nothing to re-check with)", n)
	}
	wantEnded(t, e, sess.ID, "no upstream refresh token was kept")
}
