package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/web/console"
)

// The health page lists every configured feed reader with its last poll and
// lag on this replica, read from the gauges web sets when it answers
// /revocations; a reader that has not polled says so.
func TestHealthShowsFeedReaders(t *testing.T) {
	e := consoleEnvWith(t, console.Config{AdminGroups: []string{"admins"}},
		envOptions{reg: prometheus.NewRegistry(), readers: []string{"gw-east", "gw-west"}})
	alice, status, _ := signIn(t, e, "alice", "alice-demo")
	if status != http.StatusOK {
		t.Fatalf("alice's sign-in = %d", status)
	}
	_, body, _ := get(t, alice, e.Issuer+"/console/health")
	for _, id := range []string{"gw-east", "gw-west"} {
		if !regexp.MustCompile(`<code>` + id + `</code></td><td>not polled</td>`).MatchString(body) {
			t.Errorf("health before any poll: %s not listed as not polled:\n%.2000s", id, body)
		}
	}
	if !strings.Contains(body, "this replica") {
		t.Errorf("health page does not say the polls are this replica's:\n%.2000s", body)
	}

	// gw-east reads the feed after a deprovisioning wrote an entry (bob
	// signed in once, refused by the console, so Keyward knows him).
	if _, status, _ := signIn(t, e, "bob", "bob-demo"); status != http.StatusForbidden {
		t.Fatalf("bob's console sign-in = %d, want 403", status)
	}
	if _, err := e.Broker.Deprovision(t.Context(), subjectOf(t, e, "bob@example.com").ID, "test", "admin-api"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.Issuer+"/revocations?after=0", nil)
	req.SetBasicAuth("gw-east", readerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /revocations as gw-east = %d", resp.StatusCode)
	}
	_, body, _ = get(t, alice, e.Issuer+"/console/health")
	if !regexp.MustCompile(`<code>gw-east</code></td><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)</td><td>0</td>`).MatchString(body) {
		t.Errorf("health after gw-east's poll: want its last poll and lag 0:\n%.2000s", body)
	}
	if !strings.Contains(body, `<code>gw-west</code></td><td>not polled</td>`) {
		t.Errorf("health after gw-east's poll: gw-west should still be not polled:\n%.2000s", body)
	}
}

// The keys page says, per key, whether its private key is sealed in the
// store, as the key set record holds it.
func TestKeysPageShowsEncryptionAtRest(t *testing.T) {
	e := consoleEnv(t, console.Config{AdminGroups: []string{"admins"}})
	alice, status, _ := signIn(t, e, "alice", "alice-demo")
	if status != http.StatusOK {
		t.Fatalf("alice's sign-in = %d", status)
	}
	set, err := e.Store.GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := get(t, alice, e.Issuer+"/console/keys")
	for _, k := range set.Keys {
		want := `<span class="kc-badge kc-bad">not encrypted</span>`
		if k.Encrypted {
			want = `<span class="kc-badge kc-good">encrypted</span> (AES-256-GCM)`
		}
		if !regexp.MustCompile(`<code>` + regexp.QuoteMeta(k.ID) + `</code>.*<td>` + regexp.QuoteMeta(want) + `</td></tr>`).MatchString(body) {
			t.Errorf("key %s (Encrypted %v): row without %q:\n%.3000s", k.ID, k.Encrypted, want, body)
		}
	}
	if len(set.Keys) == 0 || strings.Contains(body, "not encrypted") {
		t.Errorf("brokertest's keys (%d) are sealed with the key derived from the session secret; the page says otherwise:\n%.3000s", len(set.Keys), body)
	}
}

// A person's page and the audit filter by person list the session.revoke
// events of the person's sessions (their target is the session id), which
// the audit event records the person of.
func TestPersonAuditListsTheirSessionRevocations(t *testing.T) {
	e := consoleEnv(t, console.Config{AdminGroups: []string{"admins"}})
	if _, status, _ := signIn(t, e, "bob", "bob-demo"); status != http.StatusForbidden {
		t.Fatalf("bob's console sign-in = %d, want 403", status)
	}
	bob := subjectOf(t, e, "bob@example.com")
	sessions, err := e.Broker.Sessions(t.Context(), bob.ID)
	if err != nil || len(sessions) != 1 {
		t.Fatalf("bob's sessions = %v, %v; want 1", sessions, err)
	}
	sid := sessions[0].ID
	if _, err := e.Broker.RevokeSession(t.Context(), sid, "lost laptop", "admin-api"); err != nil {
		t.Fatal(err)
	}
	alice, status, _ := signIn(t, e, "alice", "alice-demo")
	if status != http.StatusOK {
		t.Fatalf("alice's sign-in = %d", status)
	}
	want := `<strong>session.revoke</strong> of session <code>` + sid + `</code> by admin-api`
	_, body, _ := get(t, alice, e.Issuer+"/console/people/"+url.PathEscape(bob.ID))
	if !strings.Contains(body, want) || !strings.Contains(body, "lost laptop") {
		t.Errorf("bob's page: no session.revoke of his session %s:\n%.4000s", sid, body)
	}
	_, body, _ = get(t, alice, e.Issuer+"/console/audit?"+url.Values{"person": {bob.ID}}.Encode())
	if !strings.Contains(body, sid) || !strings.Contains(body, "lost laptop") {
		t.Errorf("audit filtered by bob: no session.revoke of his session %s:\n%.4000s", sid, body)
	}
	// alice's own page does not show bob's.
	_, body, _ = get(t, alice, e.Issuer+"/console/people/"+url.PathEscape(subjectOf(t, e, "alice@example.com").ID))
	if strings.Contains(body, sid) {
		t.Errorf("alice's page lists bob's session revocation:\n%.4000s", body)
	}
}
