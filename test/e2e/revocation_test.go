package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/web/verify"
)

// The edge verifier's reader client for the revocation feed.
const (
	feedReaderID     = "verifier"
	feedReaderSecret = "verifier-secret-0123456789-0123456789/+&"
)

// newFeedEnv is a broker whose revocation feed the client feedReaderID may
// read (and app, an ordinary client, may not).
func newFeedEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, envOptions{broker: func(bc *broker.Config) {
		bc.Clients = append(bc.Clients, broker.Client{ID: feedReaderID, Secret: feedReaderSecret, GrantTypes: []string{"client_credentials"}})
		bc.RevocationReaders = []string{feedReaderID}
	}})
}

// signInAs signs name in at the (single) fake upstream in a fresh browser,
// so that no earlier single sign-on session is reused.
func (e *env) signInAs(t *testing.T, name string) (access, refresh string) {
	t.Helper()
	if name != "alice" {
		e.idps[0].SetNextClaims(map[string]any{"sub": "demo-" + name, "email": name + "@example.com",
			"name": name, "preferred_username": name})
	}
	tok, _ := e.client(appID, appSecret, appRedir, nil).signIn()
	if tok.RefreshToken == "" {
		t.Fatalf("sign-in of %s returned no refresh token", name)
	}
	return tok.AccessToken, tok.RefreshToken
}

// TestDeprovisionReachesTheEdge: a client holds a valid access token and a
// refresh token; the subject is deprovisioned; the refresh fails at once, a
// verifier polling the feed refuses the unexpired access token within two
// poll intervals, and another person's token keeps working.
func TestDeprovisionReachesTheEdge(t *testing.T) {
	const interval = 200 * time.Millisecond
	e := newFeedEnv(t)
	v, err := verify.New(t.Context(), verify.Config{
		Issuer:    e.issuer,
		Audiences: []string{appID},
		Revocation: &verify.RevocationConfig{
			Interval: interval, MaxStaleness: 5 * time.Second,
			ClientID: feedReaderID, ClientSecret: feedReaderSecret,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- v.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	aliceAT, aliceRT := e.signInAs(t, "alice")
	bobAT, _ := e.signInAs(t, "bob")
	c := e.client(appID, appSecret, appRedir, nil)

	alice, err := v.Verify(t.Context(), aliceAT)
	if err != nil {
		t.Fatalf("alice's token before deprovisioning: %v", err)
	}
	bob, err := v.Verify(t.Context(), bobAT)
	if err != nil {
		t.Fatalf("bob's token before deprovisioning: %v", err)
	}
	if alice.Subject == bob.Subject {
		t.Fatalf("alice and bob share the subject %s", alice.Subject)
	}
	if _, last, _ := v.RevocationStatus(); last.IsZero() {
		t.Fatal("the verifier accepted tokens without having read the feed")
	}

	res, err := e.b.Broker.Deprovision(t.Context(), alice.Subject, "left the company", "e2e")
	if err != nil {
		t.Fatalf("Deprovision: %v", err)
	}
	start := time.Now()
	if res.Revocation.Seq == 0 || res.Revocation.Subject != alice.Subject {
		t.Errorf("Deprovision appended %+v, want a feed entry for %s", res.Revocation, alice.Subject)
	}

	// The broker refuses the refresh token at once.
	if status, m := c.refresh(aliceRT); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after deprovisioning = %d %v, want 400 invalid_grant", status, m)
	}

	// The edge refuses the access token (still unexpired, and cached) within
	// two poll intervals.
	for {
		_, err := v.Verify(t.Context(), aliceAT)
		if errors.Is(err, verify.ErrRevoked) {
			break
		}
		if err != nil {
			t.Fatalf("alice's token while waiting for the feed: %v, want success or revoked", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the verifier still accepts alice's token 5s after deprovisioning")
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	t.Logf("deprovision to first rejection at the edge: %s (poll interval %s)", elapsed, interval)
	if limit := 2*interval + 500*time.Millisecond; elapsed > limit {
		t.Errorf("the edge took %s to refuse the token; want within two poll intervals (%s, with slack)", elapsed, limit)
	}
	var ve *verify.Error
	if _, err := v.Verify(t.Context(), aliceAT); !errors.As(err, &ve) || ve.Status != http.StatusUnauthorized || ve.Description != "token revoked" {
		t.Errorf("alice's token = %v, want 401 token revoked", err)
	}
	if _, err := v.Verify(t.Context(), bobAT); err != nil {
		t.Errorf("bob's token after alice was deprovisioned: %v", err)
	}
	if _, _, n := v.RevocationStatus(); n != 1 {
		t.Errorf("verifier revocation entries = %d, want 1", n)
	}
}

// feedGet reads /revocations as a client.
func feedGet(t *testing.T, e *env, query string, auth *url.Userinfo, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.issuer+"/revocations"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		p, _ := auth.Password()
		req.SetBasicAuth(url.QueryEscape(auth.Username()), url.QueryEscape(p))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /revocations: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestRevocationFeedEndpoint(t *testing.T) {
	e := newFeedEnv(t)
	reader := url.UserPassword(feedReaderID, feedReaderSecret)

	for _, tc := range []struct {
		name string
		auth *url.Userinfo
	}{
		{"no credentials", nil},
		{"an ordinary client", url.UserPassword(appID, appSecret)},
		{"the reader with a wrong secret", url.UserPassword(feedReaderID, "wrong")},
		{"an unknown client", url.UserPassword("nobody", "x")},
	} {
		resp, body := feedGet(t, e, "", tc.auth, nil)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("ETag") != "" {
			t.Errorf("%s: %d %v %s; want 401 with a challenge and no ETag", tc.name, resp.StatusCode, resp.Header, body)
		}
	}
	if resp, body := feedGet(t, e, "?after=-1", reader, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after=-1: %d %s, want 400", resp.StatusCode, body)
	}
	if resp, body := feedGet(t, e, "?after=x", reader, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after=x: %d %s, want 400", resp.StatusCode, body)
	}

	resp, body := feedGet(t, e, "", reader, nil)
	if resp.StatusCode != http.StatusOK || body != `{"entries":[],"highest":0,"next":0}`+"\n" ||
		resp.Header.Get("ETag") != `"0"` || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("empty feed: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	aliceAT, _ := e.signInAs(t, "alice")
	_, claims := verifyAccessToken(t, e, aliceAT, appID)
	sub, _ := claims["sub"].(string)
	at := e.clock.Now()
	if _, err := e.b.Broker.Deprovision(t.Context(), sub, "test", "e2e"); err != nil {
		t.Fatal(err)
	}
	resp, body = feedGet(t, e, "?after=0", reader, http.Header{"If-None-Match": {`"0"`}})
	nb := at.Unix() // rounded up on the wire: never before the revocation
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") != `"1"` {
		t.Fatalf("feed after deprovisioning: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	for _, want := range []string{`"seq":1`, `"kind":"subject"`, `"sub":"` + sub + `"`, `"highest":1`, `"next":1`, `"expires_at":`} {
		if !strings.Contains(body, want) {
			t.Errorf("feed entry lacks %s: %s", want, body)
		}
	}
	if !strings.Contains(body, `"not_before":`+strconv.FormatInt(nb, 10)) && !strings.Contains(body, `"not_before":`+strconv.FormatInt(nb+1, 10)) {
		t.Errorf("feed entry not_before is not the deprovisioning time %d (rounded up): %s", nb, body)
	}

	// Caught up: the same ETag answers 304; a cursor behind it does not.
	resp, body = feedGet(t, e, "?after=1", reader, http.Header{"If-None-Match": {`"1"`}})
	if resp.StatusCode != http.StatusNotModified || body != "" || resp.Header.Get("ETag") != `"1"` {
		t.Errorf("caught-up poll: %d %v %q, want 304", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := feedGet(t, e, "?after=0", reader, http.Header{"If-None-Match": {`"1"`}}); resp.StatusCode != http.StatusOK {
		t.Errorf("poll behind the ETag: %d, want 200 with the entry", resp.StatusCode)
	}
}

// TestRevokedAccessTokenReachesTheEdge: access tokens are not stored, so
// /revoke of one writes a deny entry for its jti and a token entry to the
// feed: the broker's introspection calls it inactive at once, and a
// verifier polling the feed refuses it, cached or not, while the same
// person's other token and the refresh family keep working.
func TestRevokedAccessTokenReachesTheEdge(t *testing.T) {
	e := newFeedEnv(t)
	v, err := verify.New(t.Context(), verify.Config{
		Issuer:    e.issuer,
		Audiences: []string{appID},
		Revocation: &verify.RevocationConfig{
			Interval: 100 * time.Millisecond, MaxStaleness: 5 * time.Second,
			ClientID: feedReaderID, ClientSecret: feedReaderSecret,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- v.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	c := e.client(appID, appSecret, appRedir, nil)
	revoked, refresh := e.signInAs(t, "alice")
	kept, _ := e.signInAs(t, "alice")
	for _, tok := range []string{revoked, kept} {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("token before the revocation: %v", err)
		}
	}

	if status, m := c.postForm("/revoke", url.Values{"token": {revoked}, "token_type_hint": {"access_token"}}); status != http.StatusOK {
		t.Fatalf("revoke = %d %v", status, m)
	}
	if got := c.introspect(revoked); got["active"] != false {
		t.Errorf("introspect of the revoked token = %v, want inactive", got)
	}
	if got := c.introspect(kept); got["active"] != true {
		t.Errorf("introspect of the other token = %v, want active", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(t.Context(), revoked)
		if errors.Is(err, verify.ErrRevoked) {
			break
		}
		if err != nil {
			t.Fatalf("the revoked token while waiting for the feed: %v, want success or revoked", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the verifier still accepts the revoked token 10s after /revoke")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var ve *verify.Error
	if _, err := v.Verify(t.Context(), revoked); !errors.As(err, &ve) || ve.Status != http.StatusUnauthorized || ve.Description != "token revoked" {
		t.Errorf("revoked token at the edge = %v, want 401 token revoked", err)
	}
	if _, err := v.Verify(t.Context(), kept); err != nil {
		t.Errorf("the other token at the edge: %v", err)
	}
	// Revoking an access token leaves its refresh family alone (RFC 7009
	// §2.1 makes that a MAY).
	if status, m := c.refresh(refresh); status != http.StatusOK {
		t.Errorf("refresh after revoking its access token = %d %v, want 200", status, m)
	}
}
