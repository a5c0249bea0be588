package broker

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
)

var testUpstreamTokenKey = []byte("0123456789abcdef0123456789abcdef")

// recheckEnv signs alice in through an upstream re-checked every minute
// (maximum age an hour) and returns her refresh token.
func recheckEnv(t *testing.T, refreshToken string) (*Broker, *fixture, *fakeUpstream, string, *SessionCookie) {
	t.Helper()
	f := newFixture(t)
	up := &fakeUpstream{id: "corp", name: "Corp", issuer: "https://idp.example.com", authURL: "https://idp.example.com/auth",
		identity: aliceIdentity(), interval: time.Minute, maxAge: time.Hour}
	up.identity.RefreshToken = refreshToken
	b := newTestBroker(t, f, func(c *Config) { c.UpstreamTokenKey = testUpstreamTokenKey }, up)
	code, sess := signInCode(t, b, up, nil)
	return b, f, up, redeem(t, b, code)["refresh_token"].(string), sess
}

func refresh(t *testing.T, b *Broker, rt string) (string, map[string]any) {
	t.Helper()
	status, body := post(t, b.tokenHandler(t), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"app"}})
	next, _ := body["refresh_token"].(string)
	if status != 200 {
		return "", body
	}
	return next, body
}

func TestRecheckAtRefresh(t *testing.T) {
	b, f, up, rt, sess := recheckEnv(t, "upstream-refresh")

	// Within the interval: no re-check.
	rt, body := refresh(t, b, rt)
	if rt == "" || up.refreshes != 0 {
		t.Fatalf("refresh within the interval: %v, %d upstream refreshes", body, up.refreshes)
	}
	// Past it: the upstream vouches.
	f.now = f.now.Add(2 * time.Minute)
	up.refreshed = "upstream-refresh-2"
	if rt, body = refresh(t, b, rt); rt == "" || up.refreshes != 1 {
		t.Fatalf("refresh after the interval: %v, %d upstream refreshes", body, up.refreshes)
	}
	// No usable answer, then Keyward's credentials refused: the use goes on.
	f.now = f.now.Add(2 * time.Minute)
	up.refreshErr = fmt.Errorf("%w: 502", federation.ErrRefreshUnavailable)
	if rt, body = refresh(t, b, rt); rt == "" {
		t.Fatalf("refresh, upstream unavailable: %v", body)
	}
	// The failure starts the upstream's back-off: no re-check is tried
	// before it ends.
	f.now = f.now.Add(recheckBackoffFor / 2)
	if rt, body = refresh(t, b, rt); rt == "" || up.refreshes != 2 {
		t.Fatalf("refresh during the back-off: %v, %d upstream refreshes, want 2", body, up.refreshes)
	}
	f.now = f.now.Add(recheckBackoffFor)
	up.refreshErr = fmt.Errorf("%w: invalid_client", federation.ErrClientRejected)
	if rt, body = refresh(t, b, rt); rt == "" {
		t.Fatalf("refresh, client rejected: %v", body)
	}
	st := b.RecheckStatus()
	if len(st) != 1 || !st[0].ClientRejected || st[0].Results[RecheckPassed] != 1 || st[0].Results[RecheckUnavailable] != 1 || st[0].Results[RecheckClientRejected] != 1 {
		t.Errorf("RecheckStatus() = %+v", st)
	}
	// Unvouched for longer than the maximum age: the session ends.
	f.now = f.now.Add(2 * time.Hour)
	up.refreshErr = fmt.Errorf("%w: timeout", federation.ErrRefreshUnavailable)
	if next, body := refresh(t, b, rt); next != "" || !strings.Contains(body["error_description"].(string), "not confirmed this person for too long") {
		t.Errorf("refresh past the maximum age: %v, want invalid_grant", body)
	}
	if _, err := f.st.GetSession(t.Context(), sess.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session past the maximum age: %v, want ended", err)
	}
	events, _ := f.st.ListAudit(t.Context(), 10)
	if len(events) != 1 || events[0].Actor != recheckActor || !strings.Contains(events[0].Reason, "recheckMaxAge") {
		t.Errorf("audit %+v, want the re-check's session end", events)
	}
}

func TestRecheckRefusedAtRefresh(t *testing.T) {
	b, f, up, rt, _ := recheckEnv(t, "upstream-refresh")
	f.now = f.now.Add(2 * time.Minute)
	up.refreshErr = fmt.Errorf("%w: invalid_grant", federation.ErrUpstreamRefused)
	if next, body := refresh(t, b, rt); next != "" || !strings.Contains(body["error_description"].(string), "no longer accepts this person") {
		t.Errorf("refresh refused upstream: %v", body)
	}
}

func TestRecheckWithoutUpstreamToken(t *testing.T) {
	b, f, _, rt, _ := recheckEnv(t, "") // the upstream sent no refresh token
	f.now = f.now.Add(30 * time.Minute)
	rt, body := refresh(t, b, rt)
	if rt == "" {
		t.Fatalf("refresh within the maximum age: %v", body)
	}
	f.now = f.now.Add(time.Hour)
	if next, body := refresh(t, b, rt); next != "" || body["error"] != "invalid_grant" {
		t.Errorf("refresh past the maximum age without a token: %v, want invalid_grant", body)
	}
}

func TestRecheckSessionGone(t *testing.T) {
	b, f, _, rt, sess := recheckEnv(t, "upstream-refresh")
	if err := f.st.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	if next, body := refresh(t, b, rt); next != "" || !strings.Contains(body["error_description"].(string), "must vouch for this person again") {
		t.Errorf("refresh after the session was collected: %v", body)
	}
}

func TestRecheckConfig(t *testing.T) {
	f := newFixture(t)
	_, err := New(Config{Issuer: testIssuer, Store: f.st, Keys: f.keys, GlobalSecret: make([]byte, 32),
		Upstreams: []Upstream{&fakeUpstream{id: "corp"}}, UpstreamTokenKey: []byte("short")})
	if err == nil || !strings.Contains(err.Error(), "upstream token key: must be 32 bytes") {
		t.Errorf("New(short key) = %v", err)
	}
	rc := &recheck{key: testUpstreamTokenKey}
	sealed, err := rc.sealToken("sid-1", "secret-token")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rc.openToken("sid-1", sealed); err != nil || got != "secret-token" {
		t.Errorf("openToken = %q, %v", got, err)
	}
	if _, err := rc.openToken("sid-2", sealed); err == nil {
		t.Error("openToken with another session id succeeded")
	}
	if _, err := rc.openToken("sid-1", sealed[:4]); err == nil {
		t.Error("openToken of a short value succeeded")
	}
}

// TestOpensUpstreamTokenSealedBeforeSealPackage opens an upstream refresh
// token sealed by sealToken before keys/seal existed: sessions that
// hold one keep being re-checked after an upgrade.
func TestOpensUpstreamTokenSealedBeforeSealPackage(t *testing.T) {
	b := &recheck{key: []byte("upstream-token-key-32-bytes-long")}
	sealed, err := hex.DecodeString("00d937072847d8d3515b0ba25e589ab2b926a622c885013456c6bac5b41f71fc6dac03768e42bc0c8445131fc1f1f873c44a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.openToken("sid-1234", sealed)
	if err != nil {
		t.Fatalf("openToken() = %v", err)
	}
	if want := "upstream-refresh-token"; got != want {
		t.Errorf("openToken() = %q, want %q", got, want)
	}
	if _, err := b.openToken("sid-5678", sealed); err == nil {
		t.Error("openToken() under another session id = nil error, want one")
	}
	// And a round trip through the new code.
	again, err := b.sealToken("sid-1234", got)
	if err != nil {
		t.Fatalf("sealToken() = %v", err)
	}
	if back, err := b.openToken("sid-1234", again); err != nil || back != got {
		t.Errorf("openToken(sealToken()) = %q, %v; want %q", back, err, got)
	}
}
