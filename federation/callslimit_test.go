package federation

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/test/fakeidp"
)

// TestHangingUpstreamCallsAreBounded: with one call to a hanging upstream
// in flight and MaxConcurrentCalls 1, the next call fails at once with
// ErrUpstreamBusy (as an unavailable refresh), and the slot comes back
// when the hanging call ends.
func TestHangingUpstreamCallsAreBounded(t *testing.T) {
	idp := fakeidp.NewTest(t, fakeidp.Config{
		Users:   fakeidp.DemoUsers(),
		Clients: []fakeidp.Client{{ID: "keyward", Secret: "s3cret", RedirectURIs: []string{redirectURL}}},
	})
	c := testConfig(idp.URL())
	c.MaxConcurrentCalls = 1
	up, err := c.Open(t.Context(), &http.Client{Timeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	lim := up.client.Transport.(limitedTransport).l
	idp.SetRefreshAnswer(fakeidp.RefreshHang)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := up.Refresh(ctx, "rt-hanging")
		done <- err
	}()
	for lim.InFlight() != 1 {
		select {
		case err := <-done:
			t.Fatalf("hanging Refresh returned early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	_, err = up.Refresh(t.Context(), "rt-second")
	if !errors.Is(err, ErrUpstreamBusy) || !errors.Is(err, ErrRefreshUnavailable) {
		t.Errorf("Refresh while the upstream hangs = %v, want ErrUpstreamBusy as ErrRefreshUnavailable", err)
	}
	if _, err := up.Exchange(t.Context(), "code", "verifier-0123456789-0123456789-0123456789", "nonce"); !errors.Is(err, ErrUpstreamBusy) || !errors.Is(err, ErrTokenEndpoint) {
		t.Errorf("Exchange while the upstream hangs = %v, want ErrUpstreamBusy as ErrTokenEndpoint", err)
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("hanging Refresh after cancel = nil, want an error")
	}
	if got := lim.InFlight(); got != 0 {
		t.Errorf("slots in flight after the hanging call ended = %d, want 0", got)
	}
}

func TestMaxConcurrentCallsValidate(t *testing.T) {
	c := testConfig("https://idp.example.com")
	c.MaxConcurrentCalls = -2
	c.SetDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "maxConcurrentCalls") {
		t.Errorf("Validate() = %v, want a problem at maxConcurrentCalls", err)
	}
}
