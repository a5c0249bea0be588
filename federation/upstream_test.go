package federation

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/oauth2"

	"github.com/keyward/keyward/test/fakeidp"
)

const redirectURL = "https://sso.example.com/callback"

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// newIdP starts a fake upstream that signs alice in at once.
func newIdP(t *testing.T, alg string) *fakeidp.Server {
	t.Helper()
	users := fakeidp.DemoUsers()
	users[0].Extra = map[string]any{"department": "research"}
	return fakeidp.NewTest(t, fakeidp.Config{
		Users:     users,
		Clients:   []fakeidp.Client{{ID: "keyward", Secret: "s3cret", RedirectURIs: []string{redirectURL}}},
		Algorithm: alg,
		AutoLogin: "alice",
		Now:       fixedNow,
	})
}

func testConfig(issuer string) Config {
	return Config{
		ID: "corp", Issuer: issuer, ClientID: "keyward", ClientSecret: "s3cret",
		RedirectURL: redirectURL, Now: fixedNow,
	}
}

func open(t *testing.T, idp *fakeidp.Server) *Upstream {
	t.Helper()
	up, err := testConfig(idp.URL()).Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return up
}

// login is one browser round trip to the upstream.
type login struct {
	code, verifier, nonce string
}

// authorize follows AuthCodeURL to the callback redirect and returns what
// Exchange needs.
func authorize(t *testing.T, up *Upstream) login {
	t.Helper()
	l := login{verifier: oauth2.GenerateVerifier(), nonce: "nonce-" + t.Name()}
	authURL := up.AuthCodeURL("state-1", l.nonce, l.verifier, AuthOptions{})
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, authURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET authorize = %d %q, want a redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if err := CallbackError(q); err != nil {
		t.Fatalf("callback error: %v", err)
	}
	if q.Get("state") != "state-1" {
		t.Fatalf("callback state = %q, want state-1", q.Get("state"))
	}
	l.code = q.Get("code")
	return l
}

func TestExchange(t *testing.T) {
	alice := Identity{
		Subject: "demo-alice", Email: "alice@example.com", EmailVerified: true,
		Name: "Alice Example", PreferredUsername: "alice", Groups: []string{"staff", "admins"},
		AuthTime: testNow,
	}
	tests := []struct {
		name          string
		alg           string
		setup         func(idp *fakeidp.Server)
		wrongVerifier bool
		want          Identity
		wantErr       error
		wantUserinfo  int64
	}{
		{name: "happy path", want: alice},
		{name: "ES256", alg: "ES256", want: alice},
		{name: "wrong nonce", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{WrongNonce: true}) }, wantErr: ErrNonceMismatch},
		{name: "nonce missing", setup: func(s *fakeidp.Server) { s.SetNextClaims(map[string]any{"nonce": nil}) }, wantErr: ErrNonceMismatch},
		{name: "wrong issuer", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{WrongIssuer: true}) }, wantErr: ErrInvalidIDToken},
		{name: "wrong audience", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{WrongAudience: true}) }, wantErr: ErrInvalidIDToken},
		{name: "expired", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{Expired: true}) }, wantErr: ErrInvalidIDToken},
		{name: "bad signature", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{BadSignature: true}) }, wantErr: ErrInvalidIDToken},
		{name: "bad signature ES256", alg: "ES256", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{BadSignature: true}) }, wantErr: ErrInvalidIDToken},
		{name: "missing id_token", setup: func(s *fakeidp.Server) { s.SetTamper(fakeidp.Tamper{OmitIDToken: true}) }, wantErr: ErrInvalidIDToken},
		{name: "at_hash mismatch", setup: func(s *fakeidp.Server) { s.SetNextClaims(map[string]any{"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}) }, wantErr: ErrInvalidIDToken},
		{name: "token endpoint 500", setup: func(s *fakeidp.Server) { s.FailToken(http.StatusInternalServerError) }, wantErr: ErrTokenEndpoint},
		{name: "PKCE verifier wrong", wrongVerifier: true, wantErr: ErrTokenEndpoint},
		{
			name:  "groups as string",
			setup: func(s *fakeidp.Server) { s.SetNextClaims(map[string]any{"groups": "admins"}) },
			want: func() Identity {
				id := alice
				id.Groups = []string{"admins"}
				return id
			}(),
		},
		{
			name: "userinfo fallback",
			setup: func(s *fakeidp.Server) {
				s.SetNextClaims(map[string]any{"email": nil, "email_verified": nil, "name": nil})
			},
			want:         alice,
			wantUserinfo: 1,
		},
		{
			name:         "userinfo subject mismatch",
			setup:        func(s *fakeidp.Server) { s.SetNextClaims(map[string]any{"sub": "someone-else", "name": nil}) },
			wantErr:      ErrUserinfo,
			wantUserinfo: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newIdP(t, tc.alg)
			up := open(t, idp)
			l := authorize(t, up)
			if tc.setup != nil {
				tc.setup(idp)
			}
			if tc.wrongVerifier {
				l.verifier = oauth2.GenerateVerifier()
			}
			got, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce)
			if err != nil {
				t.Logf("Exchange() error: %v", err)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Exchange() = %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Identity{}, "Claims")); diff != "" {
					t.Errorf("Exchange() identity (-want +got):\n%s", diff)
				}
				if got.Claims["department"] != "research" || got.Claims["iss"] != idp.URL() {
					t.Errorf("Exchange() raw claims = %v, want department and iss", got.Claims)
				}
			}
			if n := idp.Hits("userinfo"); n != tc.wantUserinfo {
				t.Errorf("userinfo hits = %d, want %d", n, tc.wantUserinfo)
			}
		})
	}
}

func TestExchangeExpiredIsTyped(t *testing.T) {
	idp := newIdP(t, "")
	up := open(t, idp)
	idp.SetTamper(fakeidp.Tamper{Expired: true})
	l := authorize(t, up)
	_, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce)
	if expired := (*oidc.TokenExpiredError)(nil); !errors.As(err, &expired) {
		t.Fatalf("Exchange() = %v, want *oidc.TokenExpiredError", err)
	}
}

// Errors go to logs: they must not carry upstream bodies or the code.
func TestExchangeErrorsOmitSecrets(t *testing.T) {
	idp := newIdP(t, "")
	up := open(t, idp)
	idp.FailToken(http.StatusInternalServerError)
	l := authorize(t, up)
	_, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce)
	msg := err.Error()
	for _, secret := range []string{"injected failure", l.code, l.verifier, "s3cret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("Exchange() error %q contains %q", msg, secret)
		}
	}
	if !strings.Contains(msg, "500 Internal Server Error") {
		t.Errorf("Exchange() error %q does not name the status", msg)
	}
}

func TestExchangeRequiresArguments(t *testing.T) {
	up := open(t, newIdP(t, ""))
	if _, err := up.Exchange(t.Context(), "code", "verifier", ""); err == nil {
		t.Fatal("Exchange() with an empty nonce = nil error")
	}
}

func TestVerifierBuiltOnce(t *testing.T) {
	idp := newIdP(t, "")
	up := open(t, idp)
	for range 3 {
		l := authorize(t, up)
		if _, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce); err != nil {
			t.Fatalf("Exchange() = %v", err)
		}
	}
	if d, k := idp.Hits("discovery"), idp.Hits("keys"); d != 1 || k != 1 {
		t.Errorf("hits: discovery %d, keys %d; want 1 and 1", d, k)
	}
}

func TestKeyRotation(t *testing.T) {
	idp := newIdP(t, "")
	up := open(t, idp)
	for i := range 2 {
		l := authorize(t, up)
		if _, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce); err != nil {
			t.Fatalf("Exchange() after %d rotations = %v", i, err)
		}
		idp.RotateKey()
	}
	if k := idp.Hits("keys"); k != 2 {
		t.Errorf("keys hits = %d, want 2 (one refetch for the new kid)", k)
	}
}

func TestOpen(t *testing.T) {
	t.Run("discovery issuer mismatch", func(t *testing.T) {
		idp := newIdP(t, "")
		idp.SetDiscoveryIssuer(idp.URL() + "/")
		_, err := testConfig(idp.URL()).Open(t.Context(), nil, nil)
		if mismatch := (*oidc.IssuerMismatchError)(nil); !errors.As(err, &mismatch) {
			t.Fatalf("Open() = %v, want *oidc.IssuerMismatchError", err)
		}
	})
	t.Run("invalid config does no I/O", func(t *testing.T) {
		idp := newIdP(t, "")
		cfg := testConfig(idp.URL())
		cfg.ClientID = ""
		if _, err := cfg.Open(t.Context(), nil, nil); err == nil {
			t.Fatal("Open() with no client id = nil error")
		}
		if n := idp.Hits("discovery"); n != 0 {
			t.Errorf("discovery hits = %d, want 0", n)
		}
	})
	t.Run("uses the given client", func(t *testing.T) {
		idp := newIdP(t, "")
		idp.SetLatency(time.Second)
		_, err := testConfig(idp.URL()).Open(t.Context(), &http.Client{Timeout: 50 * time.Millisecond}, nil)
		if err == nil {
			t.Fatal("Open() through a slow upstream with a 50ms client timeout = nil error")
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		idp := newIdP(t, "")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := testConfig(idp.URL()).Open(ctx, nil, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Open(cancelled) = %v, want context.Canceled", err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		up := open(t, newIdP(t, ""))
		if up.ID() != "corp" || up.Name() != "corp" {
			t.Errorf("ID(), Name() = %q, %q; want corp, corp", up.ID(), up.Name())
		}
	})
}

func TestAuthCodeURL(t *testing.T) {
	up := open(t, newIdP(t, ""))
	maxAge := 90*time.Second + time.Millisecond
	tests := []struct {
		name string
		opts AuthOptions
		want map[string]string // "" = must be absent
	}{
		{
			name: "plain",
			want: map[string]string{"prompt": "", "max_age": "", "login_hint": ""},
		},
		{
			name: "options",
			opts: AuthOptions{Prompt: "login", MaxAge: &maxAge, LoginHint: "alice@example.com"},
			want: map[string]string{"prompt": "login", "max_age": "91", "login_hint": "alice@example.com"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verifier := oauth2.GenerateVerifier()
			u, err := url.Parse(up.AuthCodeURL("st", "nc", verifier, tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			want := map[string]string{
				"response_type": "code", "client_id": "keyward", "redirect_uri": redirectURL,
				"scope": "openid email profile", "state": "st", "nonce": "nc",
				"code_challenge_method": "S256", "code_challenge": oauth2.S256ChallengeFromVerifier(verifier),
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if got := q.Get(k); got != v {
					t.Errorf("AuthCodeURL() %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
