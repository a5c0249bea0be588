package broker

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store/bolt"
)

func TestCheckIDTokenAlgorithm(t *testing.T) {
	tests := []struct {
		alg  string
		held []string
		want string // "" when accepted, else a part of the message
	}{
		{alg: "", held: []string{keys.RS256}},
		{alg: keys.RS256, held: []string{keys.RS256}},
		{alg: keys.ES256, held: []string{keys.RS256, keys.ES256}},
		{alg: keys.EdDSA, held: []string{keys.RS256, keys.ES256},
			want: `"EdDSA": the key set holds no EdDSA key (keys.algorithm and keys.accessTokenAlgorithm give it RS256 and ES256); use one of those, or set keys.accessTokenAlgorithm or keys.algorithm to EdDSA`},
		{alg: "HS256", held: []string{keys.RS256}, want: `"HS256" is not supported; use RS256, ES256, EdDSA (default: keys.algorithm)`},
		{alg: "none", held: []string{keys.RS256}, want: "is not supported"},
		// An unsupported keys.algorithm is the keys section's problem alone.
		{alg: keys.RS256, held: []string{"PS256"}},
		{alg: keys.ES256, held: []string{keys.RS256, "PS256"}, want: "give it RS256)"},
	}
	for _, tt := range tests {
		err := CheckIDTokenAlgorithm(tt.alg, tt.held)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckIDTokenAlgorithm(%q, %v) = %v, want nil", tt.alg, tt.held, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckIDTokenAlgorithm(%q, %v) = %v, want %q", tt.alg, tt.held, err, tt.want)
		}
	}
}

// TestATHash: at_hash is the left half of the SHA-256 (RS256, ES256) or
// SHA-512 (EdDSA) of the access token, base64url without padding.
func TestATHash(t *testing.T) {
	const tok = "eyJhbGciOiJFUzI1NiJ9.e30.sig"
	s256, s512 := sha256.Sum256([]byte(tok)), sha512.Sum512([]byte(tok))
	for alg, want := range map[string]string{
		keys.RS256: base64.RawURLEncoding.EncodeToString(s256[:16]),
		keys.ES256: base64.RawURLEncoding.EncodeToString(s256[:16]),
		keys.EdDSA: base64.RawURLEncoding.EncodeToString(s512[:32]),
	} {
		if got := atHash(alg, tok); got != want {
			t.Errorf("atHash(%s) = %s, want %s", alg, got, want)
		}
	}
}

// TestNewRefusesIDTokenAlgorithmWithoutKey: New names the client whose
// ID-token algorithm the key set holds no key of.
func TestNewRefusesIDTokenAlgorithmWithoutKey(t *testing.T) {
	f := newFixture(t)
	_, err := New(Config{
		Issuer: testIssuer, Store: f.st, Keys: f.keys, GlobalSecret: make([]byte, 32),
		Upstreams: []Upstream{&fakeUpstream{id: "corp"}},
		Clients:   []Client{{ID: "app", Secret: "s", RedirectURIs: []string{"https://app.example.com/cb"}, IDTokenSignedResponseAlg: keys.EdDSA}},
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err == nil || !strings.Contains(err.Error(), `clients[0].idTokenSignedResponseAlg: "EdDSA": the key set holds no EdDSA key`) {
		t.Errorf("New() = %v, want the client's idTokenSignedResponseAlg named", err)
	}
}

// TestLogoutTokensFollowTheClientsIDTokenAlgorithm: back-channel logout
// tokens are signed as the client's ID tokens are (OIDC Back-Channel
// Logout §2.4), by default as keys.algorithm.
func TestLogoutTokensFollowTheClientsIDTokenAlgorithm(t *testing.T) {
	ctx := t.Context()
	st, err := bolt.Open(ctx, bolt.Options{Path: filepath.Join(t.TempDir(), "keyward.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	km, err := keys.New(keys.Config{
		Store: st, SessionSecret: []byte("session-secret-0123456789-0123456789-0123456789"), MaxTokenTTL: 15 * time.Minute,
		AccessTokenAlgorithm: keys.ES256, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := km.Load(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, keys: km, now: time.Now().UTC().Truncate(time.Second)}
	def, es := &logoutClient{}, &logoutClient{}
	var uris []string
	for _, h := range []http.Handler{def, es} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		uris = append(uris, srv.URL)
	}
	s := newTestSender(t, f,
		Client{ID: "default", Secret: "s", BackchannelLogoutURI: uris[0]},
		Client{ID: "es", Secret: "s", BackchannelLogoutURI: uris[1], IDTokenSignedResponseAlg: keys.ES256},
	)
	runSender(t, s)
	s.notifyLogout(ctx, "alice", "sid-1", []string{"default", "es"})
	s.wait()
	for _, tt := range []struct {
		c    *logoutClient
		want string
	}{{def, keys.RS256}, {es, keys.ES256}} {
		posts := tt.c.posts()
		if len(posts) != 1 {
			t.Fatalf("%d POSTs, want 1", len(posts))
		}
		tok, err := jwt.Parse(posts[0], func(tok *jwt.Token) (any, error) {
			k, ok := km.PublicKey(tok.Header["kid"].(string))
			if !ok {
				t.Fatalf("logout token kid %v not published", tok.Header["kid"])
			}
			return k.Public, nil
		}, jwt.WithValidMethods([]string{tt.want}))
		if err != nil || tok.Method.Alg() != tt.want {
			t.Errorf("logout token: %v (alg %v), want a valid %s token", err, tok.Method.Alg(), tt.want)
		}
	}
}
