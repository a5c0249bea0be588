package federation

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/keyward/keyward/test/fakeidp"
)

func TestCheckAuthorizationResponseIssuer(t *testing.T) {
	type want int
	const (
		accepted want = iota
		mismatch
		notAllowed
	)
	tests := []struct {
		name   string
		quirks fakeidp.Quirks
		azure  bool
		iss    func(idp *fakeidp.Server) string
		want   want
	}{
		{name: "exact issuer", iss: (*fakeidp.Server).URL, want: accepted},
		{name: "no iss, not advertised", iss: func(*fakeidp.Server) string { return "" }, want: accepted},
		{name: "another issuer", iss: func(*fakeidp.Server) string { return "https://evil.example" }, want: mismatch},
		{name: "issuer with a trailing slash", iss: func(idp *fakeidp.Server) string { return idp.URL() + "/" }, want: mismatch},
		{name: "issuer in another case", iss: func(idp *fakeidp.Server) string { return "HTTP" + idp.URL()[4:] }, want: mismatch},
		{
			name: "no iss, advertised", quirks: fakeidp.Quirks{AuthResponseIss: true},
			iss: func(*fakeidp.Server) string { return "" }, want: mismatch,
		},
		{name: "exact issuer, advertised", quirks: fakeidp.Quirks{AuthResponseIss: true}, iss: (*fakeidp.Server).URL, want: accepted},
		{
			name: "azure: listed tenant", azure: true,
			iss: func(idp *fakeidp.Server) string { return idp.TenantIssuer("tenant-a") }, want: accepted,
		},
		{
			name: "azure: other tenant", azure: true,
			iss: func(idp *fakeidp.Server) string { return idp.TenantIssuer("tenant-x") }, want: notAllowed,
		},
		{
			name: "azure: the template itself", azure: true,
			iss: (*fakeidp.Server).IssuerTemplate, want: mismatch,
		},
		{
			name: "azure: tenant with a path", azure: true,
			iss: func(idp *fakeidp.Server) string { return idp.TenantIssuer("tenant-a/x") }, want: mismatch,
		},
		{
			name: "azure: another host", azure: true,
			iss: func(*fakeidp.Server) string { return "https://evil.example/tenant-a/v2.0" }, want: mismatch,
		},
		{
			name: "azure: no iss, not advertised", azure: true,
			iss: func(*fakeidp.Server) string { return "" }, want: accepted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.quirks
			q.AzureMultiTenant = tt.azure
			idp := quirkIdP(t, q, azureUser("ann", "tenant-a"))
			c := testConfig(idp.URL())
			if tt.azure {
				c = testConfig(idp.IssuerTemplate())
				c.Profile, c.Tenants = ProfileAzureAD, []string{"tenant-a"}
			}
			up, err := c.Open(t.Context(), &http.Client{Timeout: 5 * time.Second}, nil)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			iss := tt.iss(idp)
			err = up.CheckAuthorizationResponseIssuer(iss)
			var na *NotAllowedError
			switch tt.want {
			case accepted:
				if err != nil {
					t.Errorf("CheckAuthorizationResponseIssuer(%q) = %v, want nil", iss, err)
				}
			case mismatch:
				if !errors.Is(err, ErrIssuerMismatch) {
					t.Errorf("CheckAuthorizationResponseIssuer(%q) = %v, want ErrIssuerMismatch", iss, err)
				}
			case notAllowed:
				if !errors.As(err, &na) || na.Rule != "tenants" {
					t.Errorf("CheckAuthorizationResponseIssuer(%q) = %v, want a refusal by tenants", iss, err)
				}
			}
		})
	}
}

func TestLazyCheckAuthorizationResponseIssuer(t *testing.T) {
	down, _ := lazyIdP(t, -1)
	l, err := startLazy(t, t.Context(), lazyConfig(down.URL()), nil, nil, lazyHooks(newStepWait()))
	if err != nil {
		t.Fatalf("NewLazy() = %v", err)
	}
	checkIs(t, "CheckAuthorizationResponseIssuer", l.CheckAuthorizationResponseIssuer(down.URL()), ErrUpstreamUnavailable)

	up, _ := lazyIdP(t, 0)
	l, err = startLazy(t, t.Context(), lazyConfig(up.URL()), nil, nil, lazyHooks(nil))
	if err != nil || l.Ready() != nil {
		t.Fatalf("NewLazy() = %v, ready %v; want a ready upstream", err, l.Ready())
	}
	if err := l.CheckAuthorizationResponseIssuer(up.URL()); err != nil {
		t.Errorf("CheckAuthorizationResponseIssuer(issuer) = %v, want nil", err)
	}
	checkIs(t, "CheckAuthorizationResponseIssuer(other)", l.CheckAuthorizationResponseIssuer("https://evil.example"), ErrIssuerMismatch)
}
