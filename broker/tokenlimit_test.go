package broker

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

func newTestTokenLimiter(t *testing.T, cfg TokenLimits) *tokenLimiter {
	t.Helper()
	reg, err := newClientRegistry([]Client{
		{ID: "conf", Secret: "conf-secret-0123456789-0123456789", RedirectURIs: []string{"https://app.example.com/cb"}},
		{ID: "pub", Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := newTokenLimiter(cfg, reg, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTokenLimiterPublicClientBucketPerAddress(t *testing.T) {
	l := newTestTokenLimiter(t, TokenLimits{PerSecond: 1, Burst: 2})
	now := time.Unix(1e9, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	for i := range 2 {
		if le, _ := l.judge(t.Context(), "pub", "", a, now); le != nil {
			t.Fatalf("request %d of a public client within the burst = %v, want allowed", i, le)
		}
	}
	if le, _ := l.judge(t.Context(), "pub", "", a, now); le == nil || le.Scope != TokenLimitClient {
		t.Errorf("public client beyond the burst from one address = %v, want refused (client)", le)
	}
	if le, _ := l.judge(t.Context(), "pub", "", b, now); le != nil {
		t.Errorf("public client from another address = %v, want allowed (its own bucket)", le)
	}
	if le, _ := l.judge(t.Context(), "pub", "", a, now.Add(time.Second)); le != nil {
		t.Errorf("public client after one second = %v, want allowed", le)
	}
}

func TestTokenLimiterNamingAClientDoesNotSpendItsBucket(t *testing.T) {
	l := newTestTokenLimiter(t, TokenLimits{PerSecond: 1, Burst: 1, FailuresPerMinute: 60, FailureBurst: 100, AddressFailureBurst: 100})
	now := time.Unix(1e9, 0)
	attacker, legit := netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("198.51.100.7")
	for range 50 {
		_, _ = l.judge(t.Context(), "conf", "wrong", attacker, now)
	}
	if le, _ := l.judge(t.Context(), "conf", "conf-secret-0123456789-0123456789", legit, now); le != nil {
		t.Errorf("the client after 50 failures in its name = %v, want allowed (failures never spend its bucket)", le)
	}
}

func TestTokenLimiterLogsOncePerMinutePerBucket(t *testing.T) {
	l := newTestTokenLimiter(t, TokenLimits{FailuresPerMinute: 1, FailureBurst: 1})
	now := time.Unix(1e9, 0)
	addr := netip.MustParseAddr("192.0.2.66")
	logs := 0
	for i := range 10 {
		le, log := l.judge(t.Context(), "conf", "wrong", addr, now.Add(time.Duration(i)*time.Second))
		if i > 0 && le == nil {
			t.Fatalf("failure %d within a minute = allowed, want refused", i)
		}
		if log {
			logs++
		}
	}
	if logs != 1 {
		t.Errorf("refusals logged within a minute = %d, want 1", logs)
	}
	if le, log := l.judge(t.Context(), "conf", "wrong", addr, now.Add(70*time.Second)); le != nil || log {
		t.Errorf("after a minute = %v (log %v), want allowed (one failure refilled)", le, log)
	}
}

func TestTokenLimiterOffWhenInsecureUnlimited(t *testing.T) {
	l := newTestTokenLimiter(t, TokenLimits{InsecureUnlimited: true})
	if l != nil {
		t.Errorf("newTokenLimiter(InsecureUnlimited) = %v, want nil", l)
	}
}
