package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

// countingStore counts the writes that reach the store, and the bytes of
// the grants created, and the reads of the whole revocation feed.
type countingStore struct {
	Store
	mu              sync.Mutex
	writes          map[string]int
	grantBytes      int
	listRevocations int
}

func newCountingStore(s Store) *countingStore {
	return &countingStore{Store: s, writes: map[string]int{}}
}

func (c *countingStore) count(op string) {
	c.mu.Lock()
	c.writes[op]++
	c.mu.Unlock()
}

// total is the number of writes so far.
func (c *countingStore) total() (n int, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.writes {
		n += v
	}
	return n, c.grantBytes
}

func (c *countingStore) CreateGrant(ctx context.Context, g store.Grant) error {
	c.count("CreateGrant " + string(g.Kind))
	c.mu.Lock()
	c.grantBytes += len(g.Data) + len(g.Signature) + len(g.RequestID)
	c.mu.Unlock()
	return c.Store.CreateGrant(ctx, g)
}

func (c *countingStore) UpdateGrant(ctx context.Context, kind store.GrantKind, sig string, u func(store.Grant) (store.Grant, error)) error {
	c.count("UpdateGrant " + string(kind))
	return c.Store.UpdateGrant(ctx, kind, sig, u)
}

func (c *countingStore) DeleteGrant(ctx context.Context, kind store.GrantKind, sig string) error {
	c.count("DeleteGrant " + string(kind))
	return c.Store.DeleteGrant(ctx, kind, sig)
}

func (c *countingStore) DeleteGrantsByRequest(ctx context.Context, id string, kinds ...store.GrantKind) (int, error) {
	c.count("DeleteGrantsByRequest")
	return c.Store.DeleteGrantsByRequest(ctx, id, kinds...)
}

func (c *countingStore) UpdateGrantsByRequest(ctx context.Context, id string, kinds []store.GrantKind, u func(store.Grant) (store.Grant, error)) (int, error) {
	c.count("UpdateGrantsByRequest")
	return c.Store.UpdateGrantsByRequest(ctx, id, kinds, u)
}

func (c *countingStore) AppendRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error) {
	c.count("AppendRevocation " + string(r.Kind))
	return c.Store.AppendRevocation(ctx, r)
}

func (c *countingStore) UpsertSubject(ctx context.Context, id string, create func() store.Subject, u func(store.Subject) (store.Subject, error)) (store.Subject, error) {
	c.count("UpsertSubject")
	return c.Store.UpsertSubject(ctx, id, create, u)
}

func (c *countingStore) CreateSession(ctx context.Context, s store.Session) error {
	c.count("CreateSession")
	return c.Store.CreateSession(ctx, s)
}

func (c *countingStore) UpdateSession(ctx context.Context, id string, u func(store.Session) (store.Session, error)) error {
	c.count("UpdateSession")
	return c.Store.UpdateSession(ctx, id, u)
}

func (c *countingStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	c.count("Apply")
	c.mu.Lock()
	for _, g := range b.GrantCreates {
		c.grantBytes += len(g.Data) + len(g.Signature) + len(g.RequestID)
	}
	c.mu.Unlock()
	return c.Store.Apply(ctx, b)
}

func (c *countingStore) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, int64, error) {
	c.mu.Lock()
	c.listRevocations++
	c.mu.Unlock()
	return c.Store.ListRevocations(ctx, after, limit)
}

// An exchange of one of Keyward's access tokens writes nothing: no record
// per access token, not one byte more in the database file.
func TestExchangeStoresNothing(t *testing.T) {
	f := newFixture(t)
	cs := newCountingStore(f.st)
	b := newTestBroker(t, f, func(c *Config) { c.Store = cs })
	_, cc := post(t, b.tokenHandler(t), url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}, "svc", "svc-secret")
	at, _ := cc["access_token"].(string)
	if at == "" {
		t.Fatalf("client_credentials: %v", cc)
	}
	path := f.path
	before, _ := os.Stat(path)
	writes, bytes := cs.total()
	for i := range 20 {
		status, body := post(t, b.tokenHandler(t), exchangeForm(at, TokenTypeAccessToken, "audience", "api"), "svc", "svc-secret")
		if status != http.StatusOK {
			t.Fatalf("exchange %d: %d %v", i, status, body)
		}
		at = body["access_token"].(string) // a chain: each exchanges the last
	}
	w, by := cs.total()
	if w != writes || by != bytes {
		t.Errorf("20 exchanges wrote %d times (%d grant bytes): %v, want no write", w-writes, by-bytes, cs.writes)
	}
	after, _ := os.Stat(path)
	if after.Size() != before.Size() {
		t.Errorf("database file %d → %d bytes over 20 exchanges, want unchanged", before.Size(), after.Size())
	}
}

// No exchange chain widens what its origin allowed: a token of a trust
// rule keeps the rule's audiences (carried in aud_ceiling) and its scopes
// through every re-exchange, though nothing of the chain is stored.
func TestExchangeChainCannotWiden(t *testing.T) {
	f := newFixture(t)
	rule := &federation.TrustRule{Name: "ci", Audiences: []string{"api"}, Scopes: []string{"api"}, MaxTTL: config.Duration(time.Minute)}
	trust := &fakeTrust{match: federation.TrustMatch{Rule: rule, Subject: "repo:acme/app", Expiry: f.now.Add(time.Hour), Issuer: "https://ci.example.com"}}
	b := newTestBroker(t, f, func(c *Config) { c.Trust = trust })
	status, body := post(t, b.tokenHandler(t), exchangeForm(externalToken(t, f, "https://ci.example.com", nil), TokenTypeJWT), "svc", "svc-secret")
	if status != http.StatusOK {
		t.Fatalf("workload exchange: %d %v", status, body)
	}
	first := body["access_token"].(string)
	if c := decodeJWT(t, first); strings.Join(claimStrings(c[claimAudienceCeiling]), " ") != "api" || c["scope"] != "api" {
		t.Fatalf("workload token claims %v, want aud_ceiling [api] and scope api", c)
	}
	// A re-exchange may narrow or keep, and its token carries the ceiling on.
	status, body = post(t, b.tokenHandler(t), exchangeForm(first, TokenTypeAccessToken, "audience", "api"), "svc", "svc-secret")
	if status != http.StatusOK {
		t.Fatalf("re-exchange within the ceiling: %d %v", status, body)
	}
	second := body["access_token"].(string)
	if c := decodeJWT(t, second); strings.Join(claimStrings(c[claimAudienceCeiling]), " ") != "api" {
		t.Errorf("re-exchanged token claims %v, want the ceiling carried on", c)
	}
	for _, tok := range []string{first, second} {
		for _, tt := range []struct {
			name, want string
			form       url.Values
		}{
			// svc may have audience svc, but the rule never allowed it.
			{"audience beyond the rule", "invalid_target", exchangeForm(tok, TokenTypeAccessToken, "audience", "svc")},
			{"resource beyond the rule", "invalid_target", exchangeForm(tok, TokenTypeAccessToken, "resource", "svc")},
			// svc may request openid, but the token was never granted it.
			{"scope beyond the token", "invalid_scope", exchangeForm(tok, TokenTypeAccessToken, "scope", "api openid")},
		} {
			if _, body := post(t, b.tokenHandler(t), tt.form, "svc", "svc-secret"); body["error"] != tt.want {
				t.Errorf("%s: %v, want %s", tt.name, body, tt.want)
			}
		}
	}
	// With nothing requested, the re-exchange gets what the ceiling and
	// the token allow, never the client's other audience or scopes.
	if _, body := post(t, b.tokenHandler(t), exchangeForm(second, TokenTypeAccessToken), "svc", "svc-secret"); body["access_token"] == nil {
		t.Fatalf("re-exchange with nothing requested: %v", body)
	} else if c := decodeJWT(t, body["access_token"].(string)); strings.Join(claimStrings(c["aud"]), " ") != "api" || c["scope"] != "api" {
		t.Errorf("re-exchange with nothing requested: aud %v scope %v, want api and api", c["aud"], c["scope"])
	}
	// A token a person got at sign-in cannot gain a scope by exchange either.
	up := b.upstreams[0].(*fakeUpstream)
	up.identity = aliceIdentity()
	code, _ := signInCode(t, b, up, func(q url.Values) { q.Set("scope", "openid email") })
	userAT := redeem(t, b, code)["access_token"].(string)
	if _, body := post(t, b.tokenHandler(t), exchangeForm(userAT, TokenTypeAccessToken, "client_id", "app", "scope", "openid profile")); body["error"] == nil {
		t.Errorf("exchange of a sign-in token for a scope it lacks: %v, want an error", body)
	}
}

// introspectActive asks /introspect about token as client rs (an audience
// of app's tokens) and reports whether it is active.
func introspectActive(t *testing.T, b *Broker, token string) bool {
	t.Helper()
	h := func(w http.ResponseWriter, r *http.Request) { b.tokens.Introspect(t.Context(), w, r) }
	status, body := post(t, h, url.Values{"token": {token}}, "rs", "rs-secret")
	if status != http.StatusOK {
		t.Fatalf("introspect: %d %v", status, body)
	}
	return body["active"] == true
}

// tokenEntries are the jtis of the feed's token entries.
func tokenEntries(t *testing.T, st Store) map[string]store.Revocation {
	t.Helper()
	entries, _, err := st.ListRevocations(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Revocation{}
	for _, e := range entries {
		if e.Kind == store.RevokeToken {
			out[e.TokenID] = e
		}
	}
	return out
}

func jtiOf(t *testing.T, token string) string {
	t.Helper()
	jti, _ := decodeJWT(t, token)["jti"].(string)
	if jti == "" {
		t.Fatalf("token has no jti")
	}
	return jti
}

// /revoke of an access token denies its jti until it expires: introspection
// and token exchange refuse it, the feed carries a token entry, and other
// tokens of the same grant are untouched.
func TestRevokeAccessTokenDeniesItsJTI(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, _ := signInCode(t, b, up, nil)
	tok := redeem(t, b, code)
	at := tok["access_token"].(string)
	_, ref := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"app"}})
	other := ref["access_token"].(string)
	revoke := func(w http.ResponseWriter, r *http.Request) { b.tokens.Revoke(t.Context(), w, r) }

	// Another client may not revoke it (RFC 7009 §2.1).
	post(t, revoke, url.Values{"token": {at}}, "svc", "svc-secret")
	if !introspectActive(t, b, at) {
		t.Fatal("token inactive after another client's revoke attempt")
	}
	if status, body := post(t, revoke, url.Values{"token": {at}, "token_type_hint": {"access_token"}, "client_id": {"app"}}); status != http.StatusOK {
		t.Fatalf("revoke: %d %v", status, body)
	}
	if introspectActive(t, b, at) {
		t.Error("revoked access token is still active")
	}
	if !introspectActive(t, b, other) {
		t.Error("the refreshed access token was revoked along")
	}
	g, err := f.st.GetGrant(t.Context(), store.GrantDeniedToken, jtiOf(t, at))
	exp := time.Unix(int64(decodeJWT(t, at)["exp"].(float64)), 0)
	if err != nil || !g.ExpiresAt.Equal(denyUntil(exp)) {
		t.Errorf("deny entry = %+v, %v; want one kept past the token's exp %s by the leeway", g, err, exp)
	}
	if e, ok := tokenEntries(t, f.st)[jtiOf(t, at)]; !ok || !e.ExpiresAt.After(exp) {
		t.Errorf("feed token entry = %+v (found %v), want one for the jti that outlives the token", e, ok)
	}
	// Revoking it again adds nothing to the feed.
	post(t, revoke, url.Values{"token": {at}, "client_id": {"app"}})
	if n := len(tokenEntries(t, f.st)); n != 1 {
		t.Errorf("feed token entries after a second revoke = %d, want 1", n)
	}
	// app may exchange its own tokens; not a revoked one.
	if _, body := post(t, b.tokenHandler(t), exchangeForm(at, TokenTypeAccessToken, "client_id", "app")); body["error"] != "invalid_grant" ||
		!strings.Contains(body["error_description"].(string), "revoked") {
		t.Errorf("exchange of the revoked token: %v, want invalid_grant (revoked)", body)
	}
}

// A code redeemed twice revokes what it issued: the access token (recorded
// on the code without offline_access, on the refresh token with it) is
// denied.
func TestCodeReuseDeniesItsAccessToken(t *testing.T) {
	for _, scope := range []string{"openid email", "openid email offline_access"} {
		t.Run(scope, func(t *testing.T) {
			f := newFixture(t)
			up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
			b := newTestBroker(t, f, nil, up)
			code, _ := signInCode(t, b, up, func(q url.Values) { q.Set("scope", scope) })
			at := redeem(t, b, code)["access_token"].(string)
			if !introspectActive(t, b, at) {
				t.Fatal("fresh access token inactive")
			}
			status, body := post(t, b.tokenHandler(t), url.Values{
				"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect},
				"client_id": {"app"}, "code_verifier": {testVerifier},
			})
			if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
				t.Fatalf("second redemption: %d %v, want invalid_grant", status, body)
			}
			if introspectActive(t, b, at) {
				t.Error("the access token of a reused code is still active")
			}
			if _, ok := tokenEntries(t, f.st)[jtiOf(t, at)]; !ok {
				t.Error("no feed entry for the access token of the reused code")
			}
		})
	}
}

// Reuse of a rotated refresh token revokes the family, including every
// access token issued from it that is still alive. Rotation alone revokes
// none (they expire within the access-token lifetime).
func TestRefreshReuseDeniesTheFamilysAccessTokens(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, _ := signInCode(t, b, up, nil)
	tok := redeem(t, b, code)
	refresh := func(rt string) map[string]any {
		_, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}})
		return body
	}
	r1 := refresh(tok["refresh_token"].(string))
	if r1["access_token"] == nil {
		t.Fatalf("refresh: %v", r1)
	}
	ats := []string{tok["access_token"].(string), r1["access_token"].(string)}
	for i, at := range ats {
		if !introspectActive(t, b, at) {
			t.Fatalf("access token %d inactive after rotation, want active until it expires", i)
		}
	}
	f.now = f.now.Add(DefaultRefreshGracePeriod + time.Second) // past the grace period
	if body := refresh(tok["refresh_token"].(string)); body["error"] != "invalid_grant" {
		t.Fatalf("reuse of the rotated refresh token: %v, want invalid_grant", body)
	}
	entries := tokenEntries(t, f.st)
	for i, at := range ats {
		if introspectActive(t, b, at) {
			t.Errorf("access token %d of the revoked family is still active", i)
		}
		if _, ok := entries[jtiOf(t, at)]; !ok {
			t.Errorf("no feed entry for access token %d of the revoked family", i)
		}
	}
}

// Whether a token's session has ended is two point lookups (the session,
// then its ended-session record), never a read of the revocation feed,
// whose length grows with every revocation.
func TestSessionEndedIsAPointLookup(t *testing.T) {
	f := newFixture(t)
	cs := newCountingStore(f.st)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, func(c *Config) { c.Store = cs }, up)
	ended, sess := signInCode(t, b, up, nil)
	endedAT := redeem(t, b, ended)["access_token"].(string)
	expired, expiredSess := signInCode(t, b, up, func(q url.Values) { q.Set("prompt", "login") })
	expiredAT := redeem(t, b, expired)["access_token"].(string)
	if sess.ID == expiredSess.ID {
		t.Fatal("both sign-ins share one session")
	}
	if _, err := b.admin.RevokeSession(t.Context(), sess.ID, "r", "admin-api"); err != nil {
		t.Fatal(err)
	}
	// The other session expires and is collected: not ended.
	if err := f.st.DeleteSession(t.Context(), expiredSess.ID); err != nil {
		t.Fatal(err)
	}
	cs.listRevocations = 0
	if introspectActive(t, b, endedAT) {
		t.Error("token of the ended session is active")
	}
	if !introspectActive(t, b, expiredAT) {
		t.Error("token of the expired (not ended) session is inactive")
	}
	if cs.listRevocations != 0 {
		t.Errorf("the ended-session check read the revocation feed %d times, want 0", cs.listRevocations)
	}
	g, err := f.st.GetGrant(t.Context(), store.GrantEndedSession, sess.ID)
	if err != nil || g.SessionID != "" || g.Subject != "" || g.ExpiresAt.IsZero() {
		t.Errorf("ended-session record = %+v, %v; want one with an expiry and no session or subject index", g, err)
	}
}

// /userinfo reads no record of the token: the identity of its session while
// that lives, else the identity claims the token carries, by its scopes.
func TestUserInfoWithoutARecord(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, sess := signInCode(t, b, up, func(q url.Values) { q.Set("scope", "openid email profile") })
	at := redeem(t, b, code)["access_token"].(string)
	userinfo := func() map[string]any {
		r := httptest.NewRequest(http.MethodGet, testIssuer+"/userinfo", nil)
		r.Header.Set("Authorization", "Bearer "+at)
		w := httptest.NewRecorder()
		b.tokens.UserInfo(t.Context(), w, r)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != http.StatusOK {
			t.Fatalf("userinfo: %d %v", w.Code, body)
		}
		return body
	}
	want := map[string]any{"sub": SubjectID("corp", "alice"), "email": "alice@example.com", "email_verified": true, "name": "Alice"}
	if diff := cmp.Diff(want, userinfo()); diff != "" {
		t.Errorf("userinfo from the session (-want +got):\n%s", diff)
	}
	// The session expires (collected, not ended): the token's own claims.
	if err := f.st.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, userinfo()); diff != "" {
		t.Errorf("userinfo from the token's claims (-want +got):\n%s", diff)
	}
}

// A revoked access token stays denied for as long as a verifier still
// accepts it: its exp is checked in whole seconds (fosite's jwt: valid
// while now.Unix() <= exp) and replicas' clocks differ (a store GC on one
// ahead of another), so its deny entry must outlive exp by the clock skew
// Keyward allows (feedLeeway), as its feed entry does. The broker's clock
// is set past exp here while the token's signature and exp still check
// (fosite reads the real clock): the final second of the token, or a
// replica running behind the one that collected.
func TestRevokedAccessTokenStaysDeniedThroughItsLastSecond(t *testing.T) {
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth", identity: aliceIdentity()}
	b := newTestBroker(t, f, nil, up)
	code, _ := signInCode(t, b, up, nil)
	tok := redeem(t, b, code)
	at := tok["access_token"].(string)
	_, ref := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"app"}})
	late := ref["access_token"].(string)
	revoke := func(w http.ResponseWriter, r *http.Request) { b.tokens.Revoke(t.Context(), w, r) }
	if status, body := post(t, revoke, url.Values{"token": {at}, "client_id": {"app"}}); status != http.StatusOK {
		t.Fatalf("revoke: %d %v", status, body)
	}
	exp := time.Unix(int64(decodeJWT(t, at)["exp"].(float64)), 0).UTC()
	f.now = exp.Add(500 * time.Millisecond) // exp's second: the token still verifies
	if _, err := f.st.GarbageCollect(t.Context(), f.now); err != nil {
		t.Fatal(err)
	}
	if introspectActive(t, b, at) {
		t.Error("revoked access token active again in its last second, after a GC")
	}
	if _, body := post(t, b.tokenHandler(t), exchangeForm(at, TokenTypeAccessToken, "client_id", "app")); body["error"] != "invalid_grant" ||
		!strings.Contains(fmt.Sprint(body["error_description"]), "revoked") {
		t.Errorf("exchange of the revoked token in its last second: %v, want invalid_grant (revoked)", body)
	}
	// Revoked in its own last second, a token is denied all the same.
	f.now = time.Unix(int64(decodeJWT(t, late)["exp"].(float64)), 0).UTC().Add(500 * time.Millisecond)
	if status, body := post(t, revoke, url.Values{"token": {late}, "client_id": {"app"}}); status != http.StatusOK {
		t.Fatalf("revoke in the last second: %d %v", status, body)
	}
	if introspectActive(t, b, late) {
		t.Error("access token revoked in its last second is still active")
	}
}
