package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/web"
	"github.com/keyward/keyward/web/scim"
	"github.com/keyward/keyward/web/verify"
)

// The SCIM token of the corp upstream in these tests.
const scimToken = "scim-token-0123456789-0123456789-abcdef"

// scimEnv is a broker whose corp upstream has SCIM provisioning (group push
// on) and whose revocation feed the verifier's client may read.
type scimEnv struct {
	*env
	prov *broker.Provisioning
}

func newSCIMEnv(t *testing.T) *scimEnv {
	t.Helper()
	var h atomic.Value // http.Handler, set once the broker exists
	e := newEnv(t, envOptions{
		broker: func(bc *broker.Config) {
			bc.Clients = append(bc.Clients, broker.Client{ID: feedReaderID, Secret: feedReaderSecret, GrantTypes: []string{"client_credentials"}})
			bc.RevocationReaders = []string{feedReaderID}
		},
		web: func(wc *web.Config) {
			wc.SCIM = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().(http.Handler).ServeHTTP(w, r) })
		},
	})
	prov, err := e.b.Broker.NewProvisioning(broker.ProvisioningConfig{
		Store:     e.b.Store,
		Endpoints: []broker.SCIMConfig{{Upstream: "corp", Token: scimToken, Groups: true}},
		Logger:    testLogger(t),
		Now:       e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := scim.New(scim.Config{Provisioning: prov, Issuer: e.issuer, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.Store(http.Handler(sh))
	return &scimEnv{env: e, prov: prov}
}

// scimResp is one answer of the SCIM service provider.
type scimResp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// scim sends one SCIM request to the corp upstream as a provisioning
// client would, with the token unless header overrides Authorization.
func (e *scimEnv) scim(t *testing.T, method, path, body string, header ...string) scimResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.issuer+"/scim/v2/corp"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+scimToken)
	req.Header.Set("Content-Type", "application/scim+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := scimResp{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %s", method, path, raw)
		}
	}
	return out
}

func (e *scimEnv) mustSCIM(t *testing.T, want int, method, path, body string) scimResp {
	t.Helper()
	r := e.scim(t, method, path, body)
	if r.status != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.raw, want)
	}
	return r
}

// runVerifier starts an edge verifier polling the revocation feed.
func runVerifier(t *testing.T, e *env, interval time.Duration) *verify.Verifier {
	t.Helper()
	v, err := verify.New(t.Context(), verify.Config{
		Issuer:    e.issuer,
		Audiences: []string{appID},
		Revocation: &verify.RevocationConfig{
			Interval: interval, MaxStaleness: 5 * time.Second,
			ClientID: feedReaderID, ClientSecret: feedReaderSecret,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- v.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-ran })
	return v
}

// waitRevoked polls the verifier until it refuses token as revoked.
func waitRevoked(t *testing.T, v *verify.Verifier, token string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(t.Context(), token)
		if errors.Is(err, verify.ErrRevoked) {
			return
		}
		if err != nil {
			t.Fatalf("token while waiting for the feed: %v, want success or revoked", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the verifier still accepts the token 10s after the deactivation")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// okta's request bodies, as Okta's SCIM 2.0 reference shows them
// (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20).
const (
	oktaCreateBob = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName": "bob@example.com",
  "name": {"givenName": "Bob", "familyName": "Example"},
  "emails": [{"primary": true, "value": "bob@example.com", "type": "work"}],
  "displayName": "Bob Example",
  "locale": "en-US",
  "externalId": "demo-bob",
  "groups": [],
  "password": "1mz050nq",
  "active": true
}`
	oktaDeactivate = `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "replace", "value": {"active": false}}]}`
	oktaActivate = `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "replace", "value": {"active": true}}]}`
)

// TestSCIMOktaDeactivationReachesTheEdge replays Okta: the user is looked
// up by userName, created, signs in through the upstream, and is
// deactivated with PATCH active false. The refresh token then fails with
// invalid_grant and an edge verifier polling the feed refuses the access
// token; a repeated deactivation changes nothing; activation lets the
// person sign in again.
func TestSCIMOktaDeactivationReachesTheEdge(t *testing.T) {
	e := newSCIMEnv(t)
	v := runVerifier(t, e.env, 200*time.Millisecond)

	r := e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "bob@example.com"`)+"&startIndex=1&count=100", "")
	if r.body["totalResults"] != 0.0 {
		t.Fatalf("lookup before create: %s, want no result", r.raw)
	}
	r = e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", oktaCreateBob)
	id, _ := r.body["id"].(string)
	if id == "" || r.body["active"] != true || r.header.Get("Location") != e.issuer+"/scim/v2/corp/Users/"+id {
		t.Fatalf("create: %v %s", r.header, r.raw)
	}
	if strings.Contains(r.raw, "1mz050nq") {
		t.Errorf("the create answer holds the password: %s", r.raw)
	}
	// The person is known before any sign-in (pre-provisioned).
	sub := broker.SubjectID("corp", "demo-bob")
	if s, err := e.b.Broker.Subject(t.Context(), sub); err != nil || s.Email != "bob@example.com" || !s.LastLoginAt.IsZero() {
		t.Fatalf("pre-provisioned subject = %+v, %v", s, err)
	}
	r = e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "BOB@example.com"`), "")
	if r.body["totalResults"] != 1.0 {
		t.Errorf("lookup by userName (another case) after create: %s, want one result", r.raw)
	}

	at, rt := e.signInAs(t, "bob")
	claims, err := v.Verify(t.Context(), at)
	if err != nil || claims.Subject != sub {
		t.Fatalf("bob's token at the edge: %+v, %v; want subject %s", claims, err, sub)
	}

	r = e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaDeactivate)
	if r.body["active"] != false {
		t.Errorf("PATCH active false answered %s", r.raw)
	}
	c := e.client(appID, appSecret, appRedir, nil)
	if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after SCIM deactivation = %d %v, want 400 invalid_grant", status, m)
	}
	waitRevoked(t, v, at)

	feed := func() int {
		entries, _, err := e.b.Store.ListRevocations(t.Context(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	if n := feed(); n != 1 {
		t.Errorf("feed entries after the deactivation = %d, want 1", n)
	}
	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaDeactivate) // a duplicate delivery
	if n := feed(); n != 1 {
		t.Errorf("feed entries after a repeated deactivation = %d, want still 1", n)
	}
	audit, _ := e.b.Broker.AuditEvents(t.Context(), 10)
	if len(audit) == 0 || audit[len(audit)-1].Actor != "scim:corp" || audit[len(audit)-1].Action != broker.ActionDeprovision {
		t.Errorf("audit = %+v, want a deprovision by scim:corp last", audit)
	}

	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaActivate)
	if s, err := e.b.Broker.Subject(t.Context(), sub); err != nil || s.Disabled {
		t.Fatalf("after PATCH active true: %+v, %v; want reinstated", s, err)
	}
	// A new sign-in works (its token passes the edge once issued in a
	// later second than the deprovisioning: the feed's not-before is
	// rounded up to whole seconds).
	at2, _ := e.signInAs(t, "bob")
	verifyAccessToken(t, e.env, at2, appID)
	if _, err := v.Verify(t.Context(), at); !errors.Is(err, verify.ErrRevoked) {
		t.Errorf("the old token after reactivation: %v, want still revoked", err)
	}
}

// TestSCIMOktaPutDeactivates: Okta apps without PATCH for users deactivate
// with PUT of the whole user, active false.
func TestSCIMOktaPutDeactivates(t *testing.T) {
	e := newSCIMEnv(t)
	id := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", oktaCreateBob).body["id"].(string)
	_, rt := e.signInAs(t, "bob")
	put := strings.Replace(strings.Replace(oktaCreateBob, `"active": true`, `"active": false`, 1), `"schemas"`, `"id": "`+id+`", "schemas"`, 1)
	r := e.mustSCIM(t, http.StatusOK, http.MethodPut, "/Users/"+id, put)
	if r.body["active"] != false {
		t.Errorf("PUT active false answered %s", r.raw)
	}
	c := e.client(appID, appSecret, appRedir, nil)
	if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after PUT active false = %d %v, want 400 invalid_grant", status, m)
	}
}

// Entra ID's request bodies, as Microsoft documents its SCIM client
// (learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups).
const (
	entraCreateCarol = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "demo-carol",
  "userName": "carol@contoso.com",
  "active": true,
  "emails": [{"primary": true, "type": "work", "value": "carol@contoso.com"}],
  "meta": {"resourceType": "User"},
  "name": {"formatted": "Carol Contoso", "familyName": "Contoso", "givenName": "Carol"},
  "roles": []
}`
	// An Entra ID attribute update: manager as a bare id, a value-filter
	// path, and an extension attribute by its full name without a path.
	entraUpdate = `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [
    {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "2819c223-7f76-453a-919d-413861904646"},
    {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "carol.c@contoso.com"},
    {"op": "Replace", "path": "name.familyName", "value": "C"},
    {"op": "Add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D"}}
  ]}`
	// Entra ID (without the aadOptscim062020 flag) capitalises op and
	// sends active as a string.
	entraDisable = `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
  "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}`
)

// TestSCIMEntraDisableAndDelete replays Entra ID: a probe for a random
// userName, the lookup, the create, then PATCH "Replace" active "False";
// the refresh fails and the edge refuses the token. DELETE then removes
// the user (404 afterwards) and the person stays disabled; a new create
// for the same person starts inactive.
func TestSCIMEntraDisableAndDelete(t *testing.T) {
	e := newSCIMEnv(t)
	v := runVerifier(t, e.env, 200*time.Millisecond)

	e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "4b0e6e1a-6c13-4f21-9f3d-5f2a0b2e1c11"`), "")
	e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "carol@contoso.com"`), "")
	r := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", entraCreateCarol)
	id := r.body["id"].(string)
	if r.body["externalId"] != "demo-carol" {
		t.Errorf("create answered %s, want externalId demo-carol", r.raw)
	}
	r = e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`externalId eq "demo-carol"`), "")
	if r.body["totalResults"] != 1.0 {
		t.Errorf("lookup by externalId: %s, want one result", r.raw)
	}

	at, rt := e.signInAs(t, "carol")
	if _, err := v.Verify(t.Context(), at); err != nil {
		t.Fatalf("carol's token at the edge: %v", err)
	}
	r = e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, entraUpdate)
	ext, _ := r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	manager, _ := ext["manager"].(map[string]any)
	if ext["department"] != "R&D" || manager["value"] != "2819c223-7f76-453a-919d-413861904646" ||
		!strings.Contains(r.raw, `"carol.c@contoso.com"`) || r.body["active"] != true {
		t.Errorf("Entra's attribute update answered %s", r.raw)
	}
	r = e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, entraDisable)
	if r.body["active"] != false {
		t.Errorf(`PATCH "Replace" active "False" answered %s`, r.raw)
	}
	c := e.client(appID, appSecret, appRedir, nil)
	if status, m := c.refresh(rt); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh after Entra's disable = %d %v, want 400 invalid_grant", status, m)
	}
	waitRevoked(t, v, at)

	e.mustSCIM(t, http.StatusNoContent, http.MethodDelete, "/Users/"+id, "")
	e.mustSCIM(t, http.StatusNotFound, http.MethodGet, "/Users/"+id, "")
	e.mustSCIM(t, http.StatusNotFound, http.MethodDelete, "/Users/"+id, "")
	sub := broker.SubjectID("corp", "demo-carol")
	if s, err := e.b.Broker.Subject(t.Context(), sub); err != nil || !s.Disabled {
		t.Errorf("subject after DELETE = %+v, %v; want it kept, disabled", s, err)
	}
	r = e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", entraCreateCarol)
	if r.body["active"] != false || r.body["id"] == id {
		t.Errorf("create again after delete answered %s, want a new id, inactive", r.raw)
	}
	if s, _ := e.b.Broker.Subject(t.Context(), sub); !s.Disabled {
		t.Error("creating the user again reinstated the person")
	}
}

// TestSCIMDeactivateBeforeFirstSignIn: a person provisioned and deactivated
// before they ever signed in is refused at sign-in.
func TestSCIMDeactivateBeforeFirstSignIn(t *testing.T) {
	e := newSCIMEnv(t)
	id := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", oktaCreateBob).body["id"].(string)
	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaDeactivate)
	e.idps[0].SetNextClaims(map[string]any{"sub": "demo-bob", "email": "bob@example.com", "name": "bob"})
	resp := e.client(appID, appSecret, appRedir, nil).authorize(newLogin())
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Access removed") {
		t.Errorf("sign-in of a deactivated, never signed-in person = %d, want 403 Access removed page", resp.StatusCode)
	}
}

// TestSCIMGroupPush: with group push on, joining and leaving a SCIM group
// changes the groups of the person's sessions and of the tokens the next
// refresh issues.
func TestSCIMGroupPush(t *testing.T) {
	e := newSCIMEnv(t)
	uid := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", oktaCreateBob).body["id"].(string)
	_, rt := e.signInAs(t, "bob")
	c := e.client(appID, appSecret, appRedir, nil)
	// refreshGroups refreshes and returns the groups of the new access token.
	refreshGroups := func() any {
		t.Helper()
		status, m := c.refresh(rt)
		if status != http.StatusOK {
			t.Fatalf("refresh = %d %v", status, m)
		}
		rt = m["refresh_token"].(string)
		_, claims := verifyAccessToken(t, e.env, m["access_token"].(string), appID)
		return claims["groups"]
	}
	sub := broker.SubjectID("corp", "demo-bob")
	groups := func() []string {
		t.Helper()
		ss, err := e.b.Store.ListSessions(t.Context(), sub)
		if err != nil || len(ss) != 1 {
			t.Fatalf("sessions of bob = %v, %v; want one", ss, err)
		}
		return ss[0].Identity.Groups
	}
	// Okta's group push: create the group, then PATCH its members.
	g := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Groups",
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[]}`)
	gid := g.body["id"].(string)
	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"add","path":"members","value":[{"value":"`+uid+`","display":"bob@example.com"}]}]}`)
	if got := groups(); len(got) != 1 || got[0] != "Engineering" {
		t.Errorf("session groups after joining = %v, want [Engineering]", got)
	}
	if got := refreshGroups(); !cmp.Equal(got, []any{"Engineering"}) {
		t.Errorf("access token groups after joining, at the next refresh = %v, want [Engineering]", got)
	}
	// Entra's removal: "Remove" with a value filter on members.
	e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Remove","path":"members[value eq \"`+uid+`\"]"}]}`)
	if got := groups(); len(got) != 0 {
		t.Errorf("session groups after leaving = %v, want none", got)
	}
	if got := refreshGroups(); !cmp.Equal(got, []any{}) {
		t.Errorf("access token groups after leaving, at the next refresh = %v, want []", got)
	}
	r := e.mustSCIM(t, http.StatusBadRequest, http.MethodPatch, "/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"add","path":"members","value":[{"value":"no-such-user"}]}]}`)
	if r.body["scimType"] != "invalidValue" {
		t.Errorf("adding an unknown member answered %s, want invalidValue", r.raw)
	}
}

// TestSCIMRefusals: each bad request gets its SCIM error, and nothing is
// deprovisioned by mistake.
func TestSCIMRefusals(t *testing.T) {
	e := newSCIMEnv(t)
	id := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", oktaCreateBob).body["id"].(string)
	tests := []struct {
		name         string
		method, path string
		body         string
		header       []string
		status       int
		scimType     string
	}{
		{"no token", http.MethodGet, "/Users", "", []string{"Authorization", ""}, http.StatusUnauthorized, ""},
		{"wrong token", http.MethodPatch, "/Users/" + id, oktaDeactivate, []string{"Authorization", "Bearer " + scimToken + "x"}, http.StatusUnauthorized, ""},
		{"basic auth", http.MethodGet, "/Users", "", []string{"Authorization", "Basic " + scimToken}, http.StatusUnauthorized, ""},
		{"plain http behind a proxy", http.MethodPatch, "/Users/" + id, oktaDeactivate, []string{"X-Forwarded-Proto", "http"}, http.StatusForbidden, ""},
		{"malformed JSON", http.MethodPost, "/Users", `{"userName": `, nil, http.StatusBadRequest, "invalidSyntax"},
		{"malformed PATCH", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":"maybe"}}]}`, nil, http.StatusBadRequest, "invalidValue"},
		{"bad filter", http.MethodGet, "/Users?filter=" + url.QueryEscape(`userName eq`), "", nil, http.StatusBadRequest, "invalidFilter"},
		{"unknown attribute in filter", http.MethodGet, "/Users?filter=" + url.QueryEscape(`shoeSize eq "42"`), "", nil, http.StatusBadRequest, "invalidFilter"},
		{"no externalId", http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dan@example.com"}`, nil, http.StatusBadRequest, "invalidValue"},
		{"userName taken", http.MethodPost, "/Users", strings.Replace(oktaCreateBob, "demo-bob", "demo-other", 1), nil, http.StatusConflict, "uniqueness"},
		{"person linked twice", http.MethodPost, "/Users", strings.Replace(oktaCreateBob, "bob@example.com", "bobby@example.com", -1), nil, http.StatusConflict, "uniqueness"},
		{"externalId changed", http.MethodPatch, "/Users/" + id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"externalId","value":"demo-eve"}]}`, nil, http.StatusBadRequest, "mutability"},
		{"unknown user", http.MethodPatch, "/Users/nope", oktaDeactivate, nil, http.StatusNotFound, ""},
		{"oversized body", http.MethodPost, "/Users", `{"userName":"x","externalId":"` + strings.Repeat("a", 70<<10) + `"}`, nil, http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.scim(t, tt.method, tt.path, tt.body, tt.header...)
			if r.status != tt.status || r.body["scimType"] != nilIfEmpty(tt.scimType) || r.body["status"] != strconv.Itoa(tt.status) {
				t.Errorf("%s %s = %d %s, want %d scimType %q", tt.method, tt.path, r.status, r.raw, tt.status, tt.scimType)
			}
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %v", r.header)
			}
		})
	}
	other := e.scim(t, http.MethodGet, "/Users", "")
	if req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.issuer+"/scim/v2/partner/Users", nil); req != nil {
		req.Header.Set("Authorization", "Bearer "+scimToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("an upstream without provisioning = %d, want 404", resp.StatusCode)
		}
	}
	if other.body["totalResults"] != 1.0 {
		t.Errorf("users after the refusals: %s, want bob alone", other.raw)
	}
	if s, err := e.b.Broker.Subject(t.Context(), broker.SubjectID("corp", "demo-bob")); err != nil || s.Disabled {
		t.Errorf("bob after the refusals = %+v, %v; want active", s, err)
	}
	if entries, _, _ := e.b.Store.ListRevocations(t.Context(), 0, 0); len(entries) != 0 {
		t.Errorf("feed after the refusals = %v, want empty", entries)
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestSCIMDiscovery: the discovery endpoints IdPs read when the connection
// is set up.
func TestSCIMDiscovery(t *testing.T) {
	e := newSCIMEnv(t)
	r := e.mustSCIM(t, http.StatusOK, http.MethodGet, "/ServiceProviderConfig", "")
	if patch, _ := r.body["patch"].(map[string]any); patch["supported"] != true || !strings.Contains(r.raw, "oauthbearertoken") {
		t.Errorf("ServiceProviderConfig = %s, want patch supported and the bearer scheme", r.raw)
	}
	r = e.mustSCIM(t, http.StatusOK, http.MethodGet, "/ResourceTypes", "")
	if r.body["totalResults"] != 2.0 || !strings.Contains(r.raw, `"/Users"`) || !strings.Contains(r.raw, `"/Groups"`) {
		t.Errorf("ResourceTypes = %s, want User and Group", r.raw)
	}
	r = e.mustSCIM(t, http.StatusOK, http.MethodGet, "/Schemas", "")
	if !strings.Contains(r.raw, "urn:ietf:params:scim:schemas:core:2.0:User") || !strings.Contains(r.raw, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User") {
		t.Errorf("Schemas = %.300s, want the User schema and the enterprise extension", r.raw)
	}
	if r.header.Get("Content-Type") != "application/scim+json" {
		t.Errorf("Content-Type = %q, want application/scim+json", r.header.Get("Content-Type"))
	}
}
