package broker

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// The sign-in part (signIn) and the token part (tokenEndpoint) are tested
// on a Broker assembled by New on the fixture's bolt store and keys, with
// fakeUpstreams; each test drives the part itself, not HTTP routes.

const (
	testRedirect = "https://app.example.com/cb"
	testVerifier = "verifier-0123456789-0123456789-0123456789-0123456789"
)

func testChallenge() string {
	h := sha256.Sum256([]byte(testVerifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func newTestBroker(t *testing.T, f *fixture, edit func(*Config), ups ...*fakeUpstream) *Broker {
	t.Helper()
	if len(ups) == 0 {
		ups = []*fakeUpstream{{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth"}}
	}
	cfg := Config{
		Issuer: testIssuer, Store: f.st, Keys: f.keys,
		GlobalSecret: []byte("global-secret-0123456789-0123456789-0123456789"),
		Clients: []Client{
			{ID: "app", Name: "The App", Public: true, RedirectURIs: []string{testRedirect},
				Scopes: []string{"openid", "email", "profile", "groups", "offline_access"}, GrantTypes: []string{"authorization_code", "refresh_token", GrantTypeTokenExchange},
				Audiences: []string{"app", "rs"}}, // rs: the resource server that introspects app's tokens
			{ID: "rs", Secret: "rs-secret", GrantTypes: []string{"client_credentials"}},
			{ID: "svc", Secret: "svc-secret", GrantTypes: []string{"client_credentials", GrantTypeTokenExchange}, Scopes: []string{"api", "openid", "email"}, Audiences: []string{"api", "svc"}},
		},
		Logger: slog.New(slog.DiscardHandler),
		Now:    f.clock,
	}
	for _, u := range ups {
		cfg.Upstreams = append(cfg.Upstreams, u)
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// authorizeRequest is a valid /authorize request of client app, edited by
// edit.
func authorizeRequest(edit func(url.Values)) *http.Request {
	q := url.Values{
		"client_id": {"app"}, "redirect_uri": {testRedirect}, "response_type": {"code"},
		"scope": {"openid email offline_access"}, "state": {"client-state-123"}, "nonce": {"client-nonce-123"},
		"code_challenge": {testChallenge()}, "code_challenge_method": {"S256"},
	}
	if edit != nil {
		edit(q)
	}
	return httptest.NewRequest(http.MethodGet, testIssuer+"/authorize?"+q.Encode(), nil)
}

// clientRedirect writes a client answer and returns where it sends the
// browser.
func clientRedirect(t *testing.T, b *Broker, a *ClientAnswer) *url.URL {
	t.Helper()
	if a == nil {
		t.Fatal("no answer for the client")
	}
	w := httptest.NewRecorder()
	b.WriteClientAnswer(t.Context(), w, a)
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther && w.Code != http.StatusFound || err != nil {
		t.Fatalf("client answer: %d %q", w.Code, w.Header().Get("Location"))
	}
	return loc
}

// signInCode runs a whole sign-in through the single upstream and
// returns the code and the session cookie.
func signInCode(t *testing.T, b *Broker, up *fakeUpstream, edit func(url.Values)) (code string, sess *SessionCookie) {
	t.Helper()
	ctx := t.Context()
	out, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(edit)})
	if err != nil || out.RedirectURL == "" {
		t.Fatalf("Authorize() = %+v, %v; want a redirect upstream", out, err)
	}
	state := mustURL(t, out.RedirectURL).Query().Get("state")
	cb, err := b.signIn.Callback(ctx, CallbackInput{Query: url.Values{"state": {state}, "code": {"upstream-code"}}, Binding: out.Binding})
	if err != nil {
		t.Fatalf("Callback: %v", err)
	}
	loc := clientRedirect(t, b, cb.Client)
	if loc.Query().Get("code") == "" {
		t.Fatalf("Callback answer %s, want a code", loc)
	}
	return loc.Query().Get("code"), cb.Session
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func aliceIdentity() federation.Identity {
	return federation.Identity{Subject: "alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice", Groups: []string{"eng"}}
}

func TestSignInOneUpstream(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	ctx := t.Context()

	out, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(func(q url.Values) { q.Set("prompt", "login") })})
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	to := mustURL(t, out.RedirectURL)
	if to.Host != "idp.example.com" || to.Query().Get("prompt") != "login" || out.Binding == "" || out.Client != nil || out.Chooser != nil {
		t.Fatalf("Authorize() = %+v, want the upstream (prompt=login) and a binding", out)
	}
	state := to.Query().Get("state")

	// Another browser (no binding) cannot finish it.
	if _, err := b.signIn.Callback(ctx, CallbackInput{Query: url.Values{"state": {state}, "code": {"c"}}, Binding: "other"}); !isKind(err, RefusedOtherBrowser) {
		t.Errorf("Callback(other browser) = %v, want RefusedOtherBrowser", err)
	}
	cb, err := b.signIn.Callback(ctx, CallbackInput{Query: url.Values{"state": {state}, "code": {"c"}}, Binding: out.Binding})
	if err != nil {
		t.Fatalf("Callback: %v", err)
	}
	loc := clientRedirect(t, b, cb.Client)
	if loc.Query().Get("code") == "" || loc.Query().Get("iss") != testIssuer || loc.Query().Get("state") != "client-state-123" {
		t.Errorf("client redirect %s, want code, iss and state", loc)
	}
	if cb.Session == nil || !cb.Session.ExpiresAt.After(time.Now()) {
		t.Fatalf("Callback() session = %+v", cb.Session)
	}
	s, err := f.st.GetSession(ctx, cb.Session.ID)
	if err != nil || s.Subject != SubjectID("corp", "alice") || s.Identity.Email != "alice@example.com" {
		t.Errorf("stored session %+v, %v", s, err)
	}
	// The state is used once.
	if _, err := b.signIn.Callback(ctx, CallbackInput{Query: url.Values{"state": {state}, "code": {"c"}}, Binding: out.Binding}); !isKind(err, RefusedAttemptExpired) {
		t.Errorf("Callback(replay) = %v, want RefusedAttemptExpired", err)
	}

	// Single sign-on: the session answers at once.
	sso, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(nil), SessionID: cb.Session.ID})
	if err != nil || sso.Client == nil || sso.ClearSession {
		t.Fatalf("Authorize(session) = %+v, %v; want an answer for the client", sso, err)
	}
	if loc := clientRedirect(t, b, sso.Client); loc.Query().Get("code") == "" {
		t.Errorf("single sign-on answer %s, want a code", loc)
	}
	// max_age older than the sign-in, or a dead session: upstream again.
	f.now = f.now.Add(time.Hour)
	again, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(func(q url.Values) { q.Set("max_age", "60") }), SessionID: cb.Session.ID})
	if err != nil || again.RedirectURL == "" || again.ClearSession {
		t.Errorf("Authorize(max_age) = %+v, %v; want the upstream, keeping the cookie", again, err)
	}
	gone, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(func(q url.Values) { q.Set("prompt", "none") }), SessionID: "no-such-session"})
	if err != nil || !gone.ClearSession || gone.Client == nil || clientRedirect(t, b, gone.Client).Query().Get("error") != "login_required" {
		t.Errorf("Authorize(prompt=none, dead session) = %+v, %v; want login_required and the cookie cleared", gone, err)
	}
}

func TestSignInAuthorizeErrors(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, nil)
	ctx := t.Context()
	for _, tt := range []struct {
		name, err string
		edit      func(url.Values)
	}{
		{"no PKCE", "invalid_request", func(q url.Values) { q.Del("code_challenge") }},
		{"plain PKCE", "invalid_request", func(q url.Values) { q.Set("code_challenge_method", "plain") }},
		{"prompt=consent", "consent_required", func(q url.Values) { q.Set("prompt", "consent") }},
		{"bad max_age", "invalid_request", func(q url.Values) { q.Set("max_age", "-1") }},
		{"unknown scope", "invalid_scope", func(q url.Values) { q.Set("scope", "openid admin") }},
	} {
		out, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(tt.edit)})
		if err != nil {
			t.Errorf("%s: Authorize() = %v, want an error for the client", tt.name, err)
			continue
		}
		loc := clientRedirect(t, b, out.Client)
		if loc.Query().Get("error") != tt.err || loc.Query().Get("iss") != testIssuer {
			t.Errorf("%s: client redirect %s, want error=%s with iss", tt.name, loc, tt.err)
		}
	}
	for _, tt := range []struct {
		name string
		edit func(url.Values)
		want RefusalKind
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "ghost") }, RefusedUnknownClient},
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") }, RefusedUnregisteredRedirect},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, RefusedNoRedirectURI},
		{"repeated parameter", func(q url.Values) { q.Add("nonce", "again-123") }, RefusedAuthorizeForm},
		{"oversized state", func(q url.Values) { q.Set("state", strings.Repeat("s", 2000)) }, RefusedAuthorizeForm},
	} {
		if _, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(tt.edit)}); !isKind(err, tt.want) {
			t.Errorf("%s: Authorize() = %v, want %s", tt.name, err, tt.want)
		}
	}
}

func TestSignInChooser(t *testing.T) {
	f := newFixture(t)
	corp := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://corp.example.com", authURL: "https://corp.example.com/auth"}
	down := &fakeUpstream{id: "down", name: "Down", issuer: "https://down.example.com", readyErr: errors.New("discovery failed")}
	b := newTestBroker(t, f, nil, corp, down)
	ctx := t.Context()

	out, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(nil)})
	if err != nil || out.Chooser == nil {
		t.Fatalf("Authorize() = %+v, %v; want the chooser", out, err)
	}
	ch := out.Chooser
	if ch.ClientName != "The App" || len(ch.Upstreams) != 2 || ch.Upstreams[0].Unavailable || !ch.Upstreams[1].Unavailable {
		t.Errorf("chooser %+v, want The App, corp available and down unavailable", ch)
	}
	in := ChooseInput{AttemptID: ch.AttemptID, UpstreamID: "corp", Binding: out.Binding}
	for _, tt := range []struct {
		name string
		edit func(*ChooseInput)
		want RefusalKind
	}{
		{"unknown upstream", func(in *ChooseInput) { in.UpstreamID = "ghost" }, RefusedUnknownUpstream},
		{"unknown attempt", func(in *ChooseInput) { in.AttemptID = "nope" }, RefusedAttemptExpired},
		{"another browser", func(in *ChooseInput) { in.Binding = "other" }, RefusedOtherBrowser},
		{"unavailable upstream", func(in *ChooseInput) { in.UpstreamID = "down" }, RefusedUpstreamUnavailable},
	} {
		c := in
		tt.edit(&c)
		_, err := b.signIn.ChooseUpstream(ctx, c)
		if !isKind(err, tt.want) {
			t.Errorf("%s: ChooseUpstream() = %v, want %s", tt.name, err, tt.want)
		}
		var r *Refusal
		if tt.want == RefusedUpstreamUnavailable && errors.As(err, &r) && (r.Upstream != "Down" || !r.OtherUpstreams) {
			t.Errorf("%s: refusal %+v, want it to name Down and offer the others", tt.name, r)
		}
	}
	first, err := b.signIn.ChooseUpstream(ctx, in)
	if err != nil || mustURL(t, first).Host != "corp.example.com" {
		t.Fatalf("ChooseUpstream(corp) = %q, %v", first, err)
	}
	second, err := b.signIn.ChooseUpstream(ctx, in) // a second choice replaces the first
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.GetLoginAttemptByState(ctx, mustURL(t, first).Query().Get("state")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the first choice's state: %v, want gone", err)
	}
	if _, err := f.st.GetLoginAttemptByState(ctx, mustURL(t, second).Query().Get("state")); err != nil {
		t.Errorf("the second choice's state: %v, want the attempt", err)
	}
	// The only upstream being unavailable refuses at /authorize.
	b1 := newTestBroker(t, f, nil, down)
	if _, err := b1.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(nil)}); !isKind(err, RefusedUpstreamUnavailable) {
		t.Errorf("Authorize(only upstream down) = %v, want RefusedUpstreamUnavailable", err)
	}
}

func TestSignInCallbackRefusals(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	ctx := t.Context()
	start := func() (url.Values, string) {
		out, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(nil)})
		if err != nil {
			t.Fatal(err)
		}
		return url.Values{"state": {mustURL(t, out.RedirectURL).Query().Get("state")}, "code": {"c"}}, out.Binding
	}
	if _, err := b.signIn.Callback(ctx, CallbackInput{Query: url.Values{}}); !isKind(err, RefusedAttemptExpired) {
		t.Errorf("Callback(no state) = %v", err)
	}
	for _, tt := range []struct {
		name  string
		setup func(q url.Values)
		want  RefusalKind
	}{
		{"wrong issuer", func(url.Values) { up.issuerErr = federation.ErrIssuerMismatch }, RefusedWrongIssuer},
		{"foreign tenant", func(url.Values) {
			up.issuerErr = &federation.NotAllowedError{Upstream: "corp", Rule: "tenants", Message: "Your organisation may not sign in here."}
		}, RefusedNotAllowed},
		{"issuer unavailable", func(url.Values) { up.issuerErr = federation.ErrUpstreamUnavailable }, RefusedUpstreamUnavailable},
		{"no code", func(q url.Values) { q.Del("code") }, RefusedNoCode},
		{"not verified", func(url.Values) { up.exchangeErr = errors.New("bad signature") }, RefusedUpstreamFailed},
		{"allow rule", func(url.Values) {
			up.exchangeErr = &federation.NotAllowedError{Upstream: "corp", Subject: "alice", Rule: "allow.groups", Message: "Only engineers."}
		}, RefusedNotAllowed},
	} {
		up.issuerErr, up.exchangeErr = nil, nil
		q, binding := start()
		tt.setup(q)
		_, err := b.signIn.Callback(ctx, CallbackInput{Query: q, Binding: binding})
		if !isKind(err, tt.want) {
			t.Errorf("%s: Callback() = %v, want %s", tt.name, err, tt.want)
		}
	}
	up.issuerErr, up.exchangeErr = nil, nil
	// The refusals by an upstream's rules are audited.
	events, _ := f.st.ListAudit(ctx, 10)
	if len(events) != 2 || events[0].Action != ActionLoginRefused || events[1].Target != SubjectID("corp", "alice") {
		t.Errorf("audit %+v, want two login.refused events", events)
	}

	// An upstream error goes back to the client as access_denied.
	q, binding := start()
	q = url.Values{"state": q["state"], "error": {"access_denied"}}
	out, err := b.signIn.Callback(ctx, CallbackInput{Query: q, Binding: binding})
	if err != nil || clientRedirect(t, b, out.Client).Query().Get("error") != "access_denied" {
		t.Errorf("Callback(error=access_denied) = %+v, %v; want access_denied for the client", out, err)
	}

	// A disabled subject gets no session.
	sub := f.subject(t, "corp", "alice", "alice@example.com")
	if _, err := b.admin.Deprovision(ctx, sub, "r", "admin-api"); err != nil {
		t.Fatal(err)
	}
	q, binding = start()
	if _, err := b.signIn.Callback(ctx, CallbackInput{Query: q, Binding: binding}); !isKind(err, RefusedAccessRemoved) {
		t.Errorf("Callback(disabled subject) = %v, want RefusedAccessRemoved", err)
	}
	// An expired attempt.
	q, binding = start()
	f.now = f.now.Add(time.Hour)
	if _, err := b.signIn.Callback(ctx, CallbackInput{Query: q, Binding: binding}); !isKind(err, RefusedAttemptExpired) {
		t.Errorf("Callback(expired) = %v, want RefusedAttemptExpired", err)
	}
}

func TestSignInLoginLimit(t *testing.T) {
	f := newFixture(t)
	b := newTestBroker(t, f, func(c *Config) { c.LoginLimits = LoginLimits{PerMinute: 1, Burst: 2} })
	ip := netip.MustParseAddr("192.0.2.7")
	for i := range 2 {
		if _, err := b.signIn.Authorize(t.Context(), AuthorizeInput{Request: authorizeRequest(nil), ClientIP: ip}); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, err := b.signIn.Authorize(t.Context(), AuthorizeInput{Request: authorizeRequest(nil), ClientIP: ip})
	var r *Refusal
	if !errors.As(err, &r) || r.Kind != RefusedLoginLimited || r.Limited == nil || r.Limited.Scope != LimitClient || r.Limited.RetryAfter <= 0 {
		t.Errorf("third attempt: %v, want RefusedLoginLimited for the client", err)
	}
}

// TestSignInRecheckAtSingleSignOn: a session whose upstream refuses the
// re-check ends; the browser goes through the upstream again.
func TestSignInRecheckAtSingleSignOn(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth",
		identity: aliceIdentity(), interval: time.Minute, maxAge: time.Hour}
	up.identity.RefreshToken = "upstream-refresh"
	b := newTestBroker(t, f, func(c *Config) { c.UpstreamTokenKey = []byte("0123456789abcdef0123456789abcdef") }, up)
	ctx := t.Context()
	_, sess := signInCode(t, b, up, nil)

	f.now = f.now.Add(2 * time.Minute)
	up.refreshed = "upstream-refresh-2"
	out, err := b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(nil), SessionID: sess.ID})
	if err != nil || out.Client == nil || up.refreshes != 1 {
		t.Fatalf("Authorize(re-check passes) = %+v, %v, %d refreshes; want single sign-on after one re-check", out, err, up.refreshes)
	}
	f.now = f.now.Add(2 * time.Minute)
	up.refreshErr = federation.ErrUpstreamRefused
	out, err = b.signIn.Authorize(ctx, AuthorizeInput{Request: authorizeRequest(nil), SessionID: sess.ID})
	if err != nil || !out.ClearSession || out.RedirectURL == "" {
		t.Fatalf("Authorize(re-check refused) = %+v, %v; want the upstream and the cookie cleared", out, err)
	}
	if _, err := f.st.GetSession(ctx, sess.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session after a refused re-check: %v, want ended", err)
	}
	st := b.RecheckStatus()
	if len(st) != 1 || st[0].Results[RecheckPassed] != 1 || st[0].Results[RecheckRefused] != 1 {
		t.Errorf("RecheckStatus() = %+v, want one passed, one refused", st)
	}
}
