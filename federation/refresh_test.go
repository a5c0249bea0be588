package federation

import (
	"github.com/keyward/keyward/cmd/config"

	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/test/fakeidp"
)

// TestRefreshAnswers: every answer of the upstream's token endpoint to a
// refresh maps to one of the three outcomes the re-check tells apart, and
// says how the upstream answered without a token or body.
func TestRefreshAnswers(t *testing.T) {
	tests := []struct {
		name       string
		answer     fakeidp.RefreshAnswer
		want       error // nil: the refresh succeeds
		status     int
		code       string
		timeout    time.Duration
		wantRotate bool
	}{
		{name: "honest", answer: fakeidp.RefreshHonest, wantRotate: true},
		{name: "invalid_grant", answer: fakeidp.RefreshInvalidGrant, want: ErrUpstreamRefused, status: 400, code: "invalid_grant"},
		{name: "Dex deleted user", answer: fakeidp.RefreshDexDeletedUser, want: ErrRefreshUnavailable, status: 500, code: "invalid_request"},
		{name: "invalid_client", answer: fakeidp.RefreshInvalidClient, want: ErrClientRejected, status: 401, code: "invalid_client"},
		{name: "unauthorized_client", answer: fakeidp.RefreshUnauthorizedClient, want: ErrClientRejected, status: 400, code: "unauthorized_client"},
		{name: "503", answer: fakeidp.RefreshUnavailable, want: ErrRefreshUnavailable, status: 503},
		{name: "hang", answer: fakeidp.RefreshHang, want: ErrRefreshUnavailable, timeout: 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp := newIdP(t, "")
			c := testConfig(idp.URL())
			c.Scopes = []string{"openid", "email", "offline_access"}
			up, err := c.Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			l := authorize(t, up)
			id, err := up.Exchange(t.Context(), l.code, l.verifier, l.nonce)
			if err != nil || id.RefreshToken == "" {
				t.Fatalf("Exchange() = refresh token %q, %v; want one", id.RefreshToken, err)
			}
			idp.SetRefreshAnswer(tc.answer)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			next, err := up.Refresh(ctx, id.RefreshToken)
			if tc.want == nil {
				if err != nil || (next != id.RefreshToken) != tc.wantRotate {
					t.Fatalf("Refresh() = rotated %v, %v; want rotated %v, nil", next != id.RefreshToken, err, tc.wantRotate)
				}
				return
			}
			checkIs(t, "Refresh", err, tc.want)
			for _, other := range []error{ErrUpstreamRefused, ErrClientRejected, ErrRefreshUnavailable} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("Refresh() = %v, also wraps %q", err, other)
				}
			}
			var re *RefreshError
			if !errors.As(err, &re) || re.Status != tc.status || re.Code != tc.code {
				t.Errorf("Refresh() = %v, want a *RefreshError with status %d and code %q", err, tc.status, tc.code)
			}
			if strings.Contains(err.Error(), id.RefreshToken) {
				t.Errorf("Refresh() error %q contains the token", err)
			}
		})
	}
}

func TestRecheckMaxAge(t *testing.T) {
	tests := []struct {
		interval, maxAge, want time.Duration
		problem                string
	}{
		{interval: 0, maxAge: 0, want: 0},
		{interval: 5 * time.Minute, maxAge: 0, want: time.Hour},
		{interval: 45 * time.Minute, maxAge: 0, want: 90 * time.Minute},
		{interval: 5 * time.Minute, maxAge: 5 * time.Minute, want: 5 * time.Minute},
		{interval: 5 * time.Minute, maxAge: 4 * time.Minute, want: 4 * time.Minute, problem: "shorter than recheckInterval"},
		{interval: 0, maxAge: time.Hour, want: 0, problem: "needs recheckInterval"},
		{interval: time.Minute, maxAge: -time.Hour, want: time.Minute * 0, problem: "must not be negative"},
	}
	for _, tc := range tests {
		c := Config{RecheckInterval: config.Duration(tc.interval), RecheckMaxAge: config.Duration(tc.maxAge)}
		got, problem := c.recheckMaxAge(), RecheckMaxAgeProblem(tc.interval, tc.maxAge)
		if tc.problem == "" && (got != tc.want || problem != "") {
			t.Errorf("interval %s, max age %s: effective %s, problem %q; want %s, none", tc.interval, tc.maxAge, got, problem, tc.want)
		}
		if tc.problem != "" && !strings.Contains(problem, tc.problem) {
			t.Errorf("RecheckMaxAgeProblem(%s, %s) = %q, want one saying %q", tc.interval, tc.maxAge, problem, tc.problem)
		}
	}
}
