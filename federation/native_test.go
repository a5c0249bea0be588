package federation

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyward/keyward/test/fakeidp"
)

// openNative opens an upstream on idp whose native apps are "ios" and
// "android" (nil: native sign-in off).
func openNative(t *testing.T, idp *fakeidp.Server, ids []string) *Upstream {
	t.Helper()
	c := testConfig(idp.URL())
	c.NativeClientIDs = ids
	up, err := c.Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return up
}

func TestVerifyIDToken(t *testing.T) {
	idp := newIdP(t, "RS256")
	up := openNative(t, idp, []string{"ios", "android"})
	mint := func(extra map[string]any) string {
		claims := map[string]any{
			"aud": "ios", "sub": "demo-alice", "email": "alice@example.com", "email_verified": true,
			"name": "Alice Example", "preferred_username": "alice", "groups": []string{"staff"},
		}
		for k, v := range extra {
			claims[k] = v
		}
		return idp.MintJWT(claims)
	}
	tests := []struct {
		name      string
		token     string
		want      Identity
		wantErr   error
		noFetches bool
	}{
		{name: "valid", token: mint(nil), want: Identity{
			Subject: "demo-alice", Email: "alice@example.com", EmailVerified: true,
			Name: "Alice Example", PreferredUsername: "alice", Groups: []string{"staff"},
		}},
		{name: "second native app", token: mint(map[string]any{"aud": "android"}), want: Identity{
			Subject: "demo-alice", Email: "alice@example.com", EmailVerified: true,
			Name: "Alice Example", PreferredUsername: "alice", Groups: []string{"staff"},
		}},
		{name: "several audiences with native azp", token: mint(map[string]any{"aud": []string{"ios", "api"}, "azp": "ios", "groups": nil}), want: Identity{
			Subject: "demo-alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice Example", PreferredUsername: "alice",
		}},
		{name: "Keyward's own audience", token: mint(map[string]any{"aud": "keyward"}), wantErr: ErrNativeNotAccepted, noFetches: true},
		{name: "several audiences without azp", token: mint(map[string]any{"aud": []string{"ios", "api"}}), wantErr: ErrNativeNotAccepted, noFetches: true},
		{name: "expired", token: mint(map[string]any{"exp": testNow.Add(-time.Second).Unix()}), wantErr: ErrInvalidIDToken, noFetches: true},
		{name: "other issuer", token: mint(map[string]any{"iss": "https://evil.example.com"}), wantErr: ErrNativeNotAccepted, noFetches: true},
		{name: "unknown kid", token: idp.MintJWTWithKid(map[string]any{"aud": "ios", "sub": "x"}, "unknown"), wantErr: ErrInvalidIDToken},
		{name: "not a JWT", token: "abc.def", wantErr: ErrInvalidIDToken, noFetches: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := idp.Hits("keys")
			got, err := up.VerifyIDToken(t.Context(), tt.token)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("VerifyIDToken() = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Identity{}, "Claims")); diff != "" {
				t.Errorf("VerifyIDToken() identity (-want +got):\n%s", diff)
			}
			if n := idp.Hits("keys") - before; tt.noFetches && n != 0 {
				t.Errorf("VerifyIDToken() fetched the key set %d times, want 0", n)
			}
		})
	}
}

func TestVerifyIDTokenOff(t *testing.T) {
	idp := newIdP(t, "RS256")
	up := openNative(t, idp, nil)
	_, err := up.VerifyIDToken(t.Context(), idp.MintJWT(map[string]any{"aud": "keyward", "sub": "demo-alice"}))
	if !errors.Is(err, ErrNativeNotAccepted) {
		t.Errorf("VerifyIDToken() with native sign-in off = %v, want ErrNativeNotAccepted", err)
	}
	if up.NativePublicClients() {
		t.Error("NativePublicClients() = true with native sign-in off")
	}
}

// TestVerifyIDTokenUnknownKid: the client chooses the kid, so unknown kids
// refetch the upstream's keys at most once per interval.
func TestVerifyIDTokenUnknownKid(t *testing.T) {
	idp := newIdP(t, "RS256")
	up := openNative(t, idp, []string{"ios"})
	for i := range 5 {
		tok := idp.MintJWTWithKid(map[string]any{"aud": "ios", "sub": "demo-alice"}, "unknown-kid")
		if _, err := up.VerifyIDToken(t.Context(), tok); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("VerifyIDToken() %d with an unknown kid = %v, want ErrInvalidIDToken", i, err)
		}
	}
	if n := idp.Hits("keys"); n != 1 {
		t.Errorf("5 unknown-kid tokens caused %d key set fetches, want 1", n)
	}
}
