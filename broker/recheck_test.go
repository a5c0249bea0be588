package broker

import (
	"encoding/hex"
	"testing"
)

// TestOpensUpstreamTokenSealedBeforeSealPackage opens an upstream refresh
// token sealed by sealToken before internal/seal existed: sessions that
// hold one keep being re-checked after an upgrade.
func TestOpensUpstreamTokenSealedBeforeSealPackage(t *testing.T) {
	b := &Broker{cfg: Config{UpstreamTokenKey: []byte("upstream-token-key-32-bytes-long")}}
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
