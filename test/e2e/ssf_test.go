package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/web"
)

const ssfToken = "ssf-push-token-0123456789-0123456789-abc"

// transmitter is a Shared Signals transmitter as Okta or Entra ID run one:
// it publishes its JWKS and signs SETs (ES256, typ secevent+jwt) that the
// test pushes to Keyward over HTTP.
type transmitter struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
	kid string
}

func newTransmitter(t *testing.T) *transmitter {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tr := &transmitter{key: key, kid: "ssf-1"}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: tr.kid, Algorithm: "ES256", Use: "sig"}}})
	}))
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *transmitter) issuer() string { return tr.srv.URL }

// sign signs claims as a SET with key (the transmitter's when nil) and the
// header typ typ.
func (tr *transmitter) sign(t *testing.T, claims map[string]any, key *ecdsa.PrivateKey, typ string) string {
	t.Helper()
	if key == nil {
		key = tr.key
	}
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), tr.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type ssfEnv struct {
	*env
	tr *transmitter
}

// receiver hands the web handler's pushes to the Signals built once the
// broker exists.
type receiver struct {
	p atomic.Pointer[broker.Signals]
}

func (r *receiver) Receive(ctx context.Context, upstream, bearer, raw string) error {
	return r.p.Load().Receive(ctx, upstream, bearer, raw)
}

func newSSFEnv(t *testing.T) *ssfEnv {
	t.Helper()
	rcv := &receiver{}
	e := newEnv(t, envOptions{
		broker: func(bc *broker.Config) {
			bc.Clients = append(bc.Clients, broker.Client{ID: feedReaderID, Secret: feedReaderSecret, GrantTypes: []string{"client_credentials"}})
			bc.RevocationReaders = []string{feedReaderID}
		},
		web: func(wc *web.Config) { wc.Signals = rcv },
	})
	tr := newTransmitter(t)
	sig, err := e.b.Broker.NewSignals(broker.SignalsConfig{
		Store: e.b.Store,
		Streams: []broker.SignalsStream{{Upstream: "corp", Token: ssfToken, Verifier: federation.NewSETVerifier(federation.SETConfig{
			Issuer: tr.issuer(), JWKSURL: tr.srv.URL + "/jwks", Audience: e.issuer, Now: e.clock.Now, Logger: testLogger(t),
		})}},
		Logger: testLogger(t),
		Now:    e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	rcv.p.Store(sig)
	return &ssfEnv{env: e, tr: tr}
}

// set is the claims of a SET about subID with one event.
func (e *ssfEnv) set(jti string, subID map[string]any, event string) map[string]any {
	return map[string]any{
		"iss": e.tr.issuer(), "aud": e.issuer, "iat": e.clock.Now().Unix(), "jti": jti,
		"sub_id": subID,
		"events": map[string]any{event: map[string]any{"event_timestamp": e.clock.Now().Unix()}},
	}
}

// push sends raw as the transmitter does (RFC 8935 §2) and returns the
// status and the error object.
func (e *ssfEnv) push(t *testing.T, raw string, header ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.issuer+"/ssf/corp/events", strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+ssfToken)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return resp.StatusCode, m
}

// TestSSFSessionRevokedAndAccountDisabled: the transmitter pushes a CAEP
// session-revoked SET about a signed-in person (iss_sub, as Okta sends);
// their refresh fails and the edge refuses their access token. A replay is
// refused. A RISC account-disabled SET (email subject) deprovisions them;
// account-enabled (opaque subject) reinstates them.
func TestSSFSessionRevokedAndAccountDisabled(t *testing.T) {
	e := newSSFEnv(t)
	v := runVerifier(t, e.env, 200*time.Millisecond)
	at, rt := e.signInAs(t, "bob")
	if _, err := v.Verify(t.Context(), at); err != nil {
		t.Fatalf("bob's token at the edge: %v", err)
	}
	sub := broker.SubjectID("corp", "demo-bob")
	issSub := map[string]any{"format": "iss_sub", "iss": e.idps[0].URL(), "sub": "demo-bob"}

	revoked := e.tr.sign(t, e.set("j1", issSub, broker.EventSessionRevoked), nil, "secevent+jwt")
	if status, m := e.push(t, revoked); status != http.StatusAccepted {
		t.Fatalf("push session-revoked = %d %v, want 202", status, m)
	}
	c := e.client(appID, appSecret, appRedir, nil)
	if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after session-revoked = %d %v, want 400 invalid_grant", status, m)
	}
	waitRevoked(t, v, at)
	if status, m := e.push(t, revoked); status != http.StatusBadRequest || m["err"] != "invalid_request" {
		t.Errorf("replayed SET = %d %v, want 400 invalid_request", status, m)
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); s.Disabled {
		t.Error("session-revoked disabled the person; want only their sessions ended")
	}

	disabled := e.tr.sign(t, e.set("j2", map[string]any{"format": "email", "email": "bob@example.com"}, broker.EventAccountDisabled), nil, "secevent+jwt")
	if status, m := e.push(t, disabled); status != http.StatusAccepted {
		t.Fatalf("push account-disabled = %d %v, want 202", status, m)
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); !s.Disabled {
		t.Fatal("account-disabled did not deprovision the person")
	}
	audit, _ := e.b.Broker.AuditEvents(t.Context(), 1)
	if len(audit) != 1 || audit[0].Actor != "ssf:corp" || audit[0].Action != broker.ActionDeprovision {
		t.Errorf("last audit event = %+v, want a deprovision by ssf:corp", audit)
	}
	enabled := e.tr.sign(t, e.set("j3", map[string]any{"format": "opaque", "id": "demo-bob"}, broker.EventAccountEnabled), nil, "secevent+jwt")
	if status, m := e.push(t, enabled); status != http.StatusAccepted {
		t.Fatalf("push account-enabled = %d %v, want 202", status, m)
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); s.Disabled {
		t.Error("account-enabled did not reinstate the person")
	}
	if status, _ := e.push(t, enabled); status != http.StatusBadRequest {
		t.Error("a replayed account-enabled was accepted")
	}
}

// TestSSFRefusals: each bad push gets its RFC 8935 error and changes
// nothing.
func TestSSFRefusals(t *testing.T) {
	e := newSSFEnv(t)
	e.signInAs(t, "bob")
	sub := broker.SubjectID("corp", "demo-bob")
	issSub := map[string]any{"format": "iss_sub", "iss": e.idps[0].URL(), "sub": "demo-bob"}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := func(edit func(map[string]any)) map[string]any {
		c := e.set("x-"+randomString(), issSub, broker.EventAccountDisabled)
		edit(c)
		return c
	}
	good := func(map[string]any) {}
	tests := []struct {
		name   string
		raw    string
		header []string
		status int
		err    string
	}{
		{"no token", e.tr.sign(t, claims(good), nil, "secevent+jwt"), []string{"Authorization", ""}, http.StatusUnauthorized, "authentication_failed"},
		{"wrong token", e.tr.sign(t, claims(good), nil, "secevent+jwt"), []string{"Authorization", "Bearer " + ssfToken + "x"}, http.StatusUnauthorized, "authentication_failed"},
		{"not a SET content type", e.tr.sign(t, claims(good), nil, "secevent+jwt"), []string{"Content-Type", "application/json"}, http.StatusBadRequest, "invalid_request"},
		{"another key", e.tr.sign(t, claims(good), other, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_key"},
		{"another audience", e.tr.sign(t, claims(func(c map[string]any) { c["aud"] = "https://other.example" }), nil, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_audience"},
		{"another issuer", e.tr.sign(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example" }), nil, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_issuer"},
		{"no typ", e.tr.sign(t, claims(good), nil, ""), nil, http.StatusBadRequest, "invalid_request"},
		{"no jti", e.tr.sign(t, claims(func(c map[string]any) { delete(c, "jti") }), nil, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_request"},
		{"too old", e.tr.sign(t, claims(func(c map[string]any) { c["iat"] = e.clock.Now().Add(-48 * time.Hour).Unix() }), nil, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_request"},
		{"unknown subject format", e.tr.sign(t, claims(func(c map[string]any) { c["sub_id"] = map[string]any{"format": "phone_number", "phone_number": "+1"} }), nil, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_request"},
		{"iss_sub of another issuer", e.tr.sign(t, claims(func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "iss_sub", "iss": "https://other-idp.example", "sub": "demo-bob"}
		}), nil, "secevent+jwt"), nil, http.StatusBadRequest, "invalid_request"},
		{"not a JWT", "garbage", nil, http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := e.push(t, tt.raw, tt.header...)
			if status != tt.status || m["err"] != tt.err || m["description"] == "" {
				t.Errorf("push = %d %v, want %d err %s with a description", status, m, tt.status, tt.err)
			}
		})
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); s.Disabled {
		t.Error("a refused push deprovisioned the person")
	}
	// Unknown events and unknown people are acknowledged, nothing else.
	unknown := e.tr.sign(t, e.set("u1", issSub, "https://schemas.example.com/event/new-thing"), nil, "secevent+jwt")
	if status, m := e.push(t, unknown); status != http.StatusAccepted {
		t.Errorf("unknown event = %d %v, want 202", status, m)
	}
	nobody := e.tr.sign(t, e.set("u2", map[string]any{"format": "opaque", "id": "demo-nobody"}, broker.EventAccountDisabled), nil, "secevent+jwt")
	if status, m := e.push(t, nobody); status != http.StatusAccepted {
		t.Errorf("event about an unknown person = %d %v, want 202", status, m)
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); s.Disabled {
		t.Error("an acknowledged event deprovisioned bob")
	}
}
