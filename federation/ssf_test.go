package federation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestSETVerifier(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256"}}})
	}))
	defer srv.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v := NewSETVerifier(SETConfig{Issuer: "https://tx.example", JWKSURL: srv.URL, Audience: "https://kw.example", MaxAge: time.Hour,
		Client: srv.Client(), Now: func() time.Time { return now }})
	sign := func(edit func(map[string]any)) string {
		c := map[string]any{"iss": "https://tx.example", "aud": []string{"https://other.example", "https://kw.example"},
			"iat": now.Unix(), "jti": "j1", "events": map[string]any{"https://example/event": map[string]any{}}}
		edit(c)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
			(&jose.SignerOptions{}).WithType("secevent+jwt").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		jws, err := signer.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := jws.CompactSerialize()
		return raw
	}
	tests := []struct {
		name string
		edit func(map[string]any)
		want error
	}{
		{"valid, aud an array", func(map[string]any) {}, nil},
		{"aud a string", func(c map[string]any) { c["aud"] = "https://kw.example" }, nil},
		{"other aud", func(c map[string]any) { c["aud"] = "https://other.example" }, ErrSETAudience},
		{"issuer with a trailing slash", func(c map[string]any) { c["iss"] = "https://tx.example/" }, ErrSETIssuer},
		{"iat in the future", func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() }, ErrSETInvalid},
		{"iat too old", func(c map[string]any) { c["iat"] = now.Add(-2 * time.Hour).Unix() }, ErrSETInvalid},
		{"expired", func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }, ErrSETInvalid},
		{"no events", func(c map[string]any) { delete(c, "events") }, ErrSETInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := v.Verify(t.Context(), sign(tt.edit))
			if tt.want == nil {
				if err != nil || set.ID != "j1" || len(set.Events) != 1 || !set.IssuedAt.Equal(now) {
					t.Errorf("Verify = %+v, %v; want the SET", set, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}
