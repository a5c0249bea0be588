package web

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCountEvents logs the broker's events through CountEvents under level
// warn: every event counts, attributes bound with With count like the
// record's own, labels outside their bounded sets become "other", and only
// records at warn or above reach the wrapped handler.
func TestCountEvents(t *testing.T) {
	reg := prometheus.NewRegistry()
	var out bytes.Buffer
	log := slog.New(CountEvents(reg, slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx := context.Background()

	log.InfoContext(ctx, "tokens issued", "event", "token_issued", "client_id", "app", "grant_type", "authorization_code")
	log.InfoContext(ctx, "tokens issued", "event", "token_issued", "client_id", "app", "grant_type", "refresh_token")
	log.InfoContext(ctx, "token request refused", "event", "token_refused", "grant_type", "refresh_token", "error", "invalid_grant", "reused", "refresh_token")
	log.InfoContext(ctx, "token request refused", "event", "token_refused", "grant_type", "password", "error", "unsupported_grant_type")
	log.InfoContext(ctx, "token request refused", "event", "token_refused", "grant_type", "", "error", "<script>")
	signIn := log.With("upstream", "corp", "client_id", "app")
	signIn.InfoContext(ctx, "signed in", "event", "login_succeeded")
	signIn.WarnContext(ctx, "upstream refused", "event", "login_failed")
	log.With("client_id", "shop").WarnContext(ctx, "back-channel logout failed; giving up", "event", "backchannel_logout_failed")
	log.ErrorContext(ctx, "store unavailable", "event", "store_unavailable", "endpoint", "token")
	log.InfoContext(ctx, "no event here", "client_id", "app")
	log.WithGroup("g").InfoContext(ctx, "grouped", "event", "token_issued", "client_id", "app", "grant_type", "client_credentials")

	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"keyward_backchannel_logout_failures_total", map[string]string{"client_id": "shop"}},
		{"keyward_sign_ins_total", map[string]string{"upstream": "corp", "result": "failed"}},
		{"keyward_sign_ins_total", map[string]string{"upstream": "corp", "result": "succeeded"}},
		{"keyward_store_unavailable_total", map[string]string{"endpoint": "token"}},
		{"keyward_token_reuse_detected_total", map[string]string{"token": "refresh_token"}},
		{"keyward_tokens_issued_total", map[string]string{"client_id": "app", "grant_type": "authorization_code"}},
		{"keyward_tokens_issued_total", map[string]string{"client_id": "app", "grant_type": "refresh_token"}},
		// A record in a group still counts by its own attributes.
		{"keyward_tokens_issued_total", map[string]string{"client_id": "app", "grant_type": "client_credentials"}},
	} {
		if got := counterValue(t, reg, c.name, c.labels); got != 1 {
			t.Errorf("%s%v = %v, want 1", c.name, c.labels, got)
		}
	}
	for _, c := range []struct {
		grant, result string
		want          float64
	}{
		{"authorization_code", "issued", 1},
		{"refresh_token", "issued", 1},
		{"refresh_token", "invalid_grant", 1},
		{"other", "unsupported_grant_type", 1},
		{"none", "other", 1},
	} {
		if got := counterValue(t, reg, "keyward_token_requests_total", map[string]string{"grant_type": c.grant, "result": c.result}); got != c.want {
			t.Errorf("keyward_token_requests_total{grant_type=%q,result=%q} = %v, want %v", c.grant, c.result, got, c.want)
		}
	}
	logged := out.String()
	if strings.Contains(logged, "tokens issued") || strings.Contains(logged, "signed in") {
		t.Errorf("Info records reached a handler at level warn:\n%s", logged)
	}
	for _, msg := range []string{"upstream refused", "back-channel logout failed", "store unavailable"} {
		if !strings.Contains(logged, msg) {
			t.Errorf("the handler did not get %q:\n%s", msg, logged)
		}
	}
	if !strings.Contains(logged, "upstream=corp") {
		t.Errorf("With's attributes did not reach the handler:\n%s", logged)
	}
}

// counterValue is the value of the counter name with labels in reg (0 when
// absent).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
