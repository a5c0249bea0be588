package e2e

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
)

// mixupCase is one sign-in whose upstream authorization response carries
// some iss (RFC 9207), or none.
type mixupCase struct {
	name   string
	quirks fakeidp.Quirks
	user   fakeidp.User
	// upstream edits the upstream's configuration (corp).
	upstream func(c *federation.Config, idp *fakeidp.Server)
	// knob sets the iss the upstream sends; other is a second upstream's
	// fake IdP, whose issuer a mixed-up response may carry.
	knob func(idp, other *fakeidp.Server)
	// wantTitle is the refusal page's title; "" for a sign-in that ends
	// at the app with a code.
	wantTitle  string
	wantStatus int
}

func TestMixUp(t *testing.T) {
	const tenant = "11111111-2222-3333-4444-555555555555"
	alice := fakeidp.User{Subject: "sub-alice", Username: "alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice"}
	azure := func(tid string) fakeidp.User {
		return fakeidp.User{Subject: "pairwise-ann", Username: "ann@corp.example", Email: "ann@corp.example", Name: "Ann", TenantID: tid, ObjectID: "oid-ann"}
	}
	azureUpstream := func(c *federation.Config, idp *fakeidp.Server) {
		c.Profile, c.Issuer, c.Tenants, c.GraphURL, c.Scopes = federation.ProfileAzureAD, idp.IssuerTemplate(), []string{tenant}, idp.GraphURL(), nil
	}
	const wrongIdP = "Sign-in answer from the wrong identity provider"
	tests := []mixupCase{
		{name: "no iss, not advertised", user: alice},
		{name: "correct iss", quirks: fakeidp.Quirks{AuthResponseIss: true}, user: alice},
		{
			name: "iss of the other upstream", user: alice,
			knob:      func(idp, other *fakeidp.Server) { idp.SetAuthResponseIssuer(other.URL(), false) },
			wantTitle: wrongIdP, wantStatus: http.StatusBadRequest,
		},
		{
			name: "wrong iss, advertised", quirks: fakeidp.Quirks{AuthResponseIss: true}, user: alice,
			knob:      func(idp, _ *fakeidp.Server) { idp.SetAuthResponseIssuer("https://attacker.example", false) },
			wantTitle: wrongIdP, wantStatus: http.StatusBadRequest,
		},
		{
			name: "missing iss, advertised", quirks: fakeidp.Quirks{AuthResponseIss: true}, user: alice,
			knob:      func(idp, _ *fakeidp.Server) { idp.SetAuthResponseIssuer("", true) },
			wantTitle: wrongIdP, wantStatus: http.StatusBadRequest,
		},
		{
			name: "azure: listed tenant's issuer", quirks: fakeidp.Quirks{AzureMultiTenant: true, AuthResponseIss: true},
			user: azure(tenant), upstream: azureUpstream,
		},
		{
			name: "azure: the template as iss", quirks: fakeidp.Quirks{AzureMultiTenant: true, AuthResponseIss: true},
			user: azure(tenant), upstream: azureUpstream,
			knob:      func(idp, _ *fakeidp.Server) { idp.SetAuthResponseIssuer(idp.IssuerTemplate(), false) },
			wantTitle: wrongIdP, wantStatus: http.StatusBadRequest,
		},
		{
			name: "azure: another tenant's issuer", quirks: fakeidp.Quirks{AzureMultiTenant: true, AuthResponseIss: true},
			user: azure("99999999-0000-0000-0000-000000000000"), upstream: azureUpstream,
			wantTitle: "Access not allowed", wantStatus: http.StatusForbidden,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func (tc mixupCase) run(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	newIdP := func(q fakeidp.Quirks) *fakeidp.Server {
		return fakeidp.NewTest(t, fakeidp.Config{
			Users:     []fakeidp.User{tc.user},
			Clients:   []fakeidp.Client{{ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret, RedirectURIs: []string{issuer + "/callback"}}},
			AutoLogin: tc.user.Username,
			Quirks:    q,
		})
	}
	idp, other := newIdP(tc.quirks), newIdP(fakeidp.Quirks{})
	e := brokertest.New(t, brokertest.Options{
		Dir: t.TempDir(), NoSync: true, Listener: ln, IdPs: []*fakeidp.Server{idp, other},
		Clients: []broker.Client{{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}}},
		Upstream: func(i int, c *federation.Config) {
			if i == 0 && tc.upstream != nil {
				tc.upstream(c, idp)
			}
		},
	})
	if tc.knob != nil {
		tc.knob(idp, other)
	}
	le := &limitedEnv{Env: e}
	browser := newBrowser(t)
	resp, body := getNoFollow(t, browser, le.authorizeURL())
	link := chooserLink(body, "corp")
	if resp.StatusCode != http.StatusOK || link == "" {
		t.Fatalf("authorize = %d, want the chooser with a link to corp; body: %.500s", resp.StatusCode, body)
	}
	// The browser follows corp's sign-in back to /callback.
	resp, err = browser.Get(e.Issuer + link)
	if err != nil {
		t.Fatalf("GET %s: %v", link, err)
	}
	body = readAll(t, resp)

	if tc.wantTitle == "" {
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), appRedir) ||
			!strings.Contains(resp.Header.Get("Location"), "code=") {
			t.Fatalf("sign-in = %d Location %q, want 303 to the app with a code; body: %.500s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if n := idp.Hits("token"); n != 1 {
			t.Errorf("upstream token endpoint hits = %d, want 1", n)
		}
		return
	}
	if resp.StatusCode != tc.wantStatus || pageTitle(body) != tc.wantTitle {
		t.Fatalf("callback = %d %q, want %d %q; body: %.500s", resp.StatusCode, pageTitle(body), tc.wantStatus, tc.wantTitle, body)
	}
	// The code never went to a token endpoint: not the upstream's the
	// login was sent to, nor the other's.
	if n, m := idp.Hits("token"), other.Hits("token"); n != 0 || m != 0 {
		t.Errorf("token endpoint hits: upstream %d, other upstream %d; want 0 and 0", n, m)
	}
	if sessions, err := e.Store.ListSessions(t.Context(), ""); err != nil || len(sessions) != 0 {
		t.Errorf("sessions after a refused callback = %d, %v; want none", len(sessions), err)
	}
	if n := idp.Hits("authorize"); n != 1 {
		t.Errorf("upstream authorize hits = %d, want 1 (the flow reached the upstream)", n)
	}
}
