package brokertest

import (
	"net/http"
	"testing"
)

// TestRestartKeepsIssuerAndData: the environment serves discovery, and a
// restart on the same bbolt file keeps the issuer URL and the signing keys.
func TestRestartKeepsIssuerAndData(t *testing.T) {
	env := New(t, Options{NoSync: true})
	kid := env.Keys.SigningKey().ID
	resp, err := http.Get(env.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery = %d, want 200", resp.StatusCode)
	}
	issuer := env.Issuer
	if err := env.Restart(t.Context()); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if env.Issuer != issuer || env.Keys.SigningKey().ID != kid {
		t.Errorf("after restart: issuer %q kid %q, want %q %q", env.Issuer, env.Keys.SigningKey().ID, issuer, kid)
	}
}
