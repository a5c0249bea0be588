package crash

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/web/verify"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Why kill points compiled into a test build rather than kills at random
// moments: a random kill lands mostly where nothing is being written, so
// each write point is hit only by luck and a run proves little about the
// one that matters. The crash-test build announces every store write and
// dies, on request, just before it (nothing of it stored) or just after it
// (stored, the answer never sent): the two sides of every commit the broker
// makes, each reached on purpose, on every run. What happens inside one
// commit (bbolt's meta-page switch, PostgreSQL's COMMIT) is the database's
// own promise, and a SIGKILL cannot undo it either way: the page cache
// survives the process. So this proves process-crash safety (the unit of
// work is the right unit, and a client that retries gets a consistent
// answer), not power-loss durability, which fsync gives (bbolt NoSync
// off, synchronous_commit on).

// backends are the stores every scenario runs on.
var backends = []backend{
	{"bolt", func(t *testing.T, dir string) (string, string) {
		path := filepath.Join(dir, "keyward.db")
		return "  type: bolt\n  path: " + path, path
	}, nil},
	{"postgres", func(t *testing.T, dir string) (string, string) {
		// Skips (fails under KEYWARD_TEST_REQUIRE_ALL=1) without a server.
		dsn := pgtest.SchemaDSN(t)
		return "  type: postgres\n  dsn: " + dsn, ""
	}, func(t *testing.T) { pgtest.SchemaDSN(t) }},
}

// kill says where a process died before the check runs.
type kill struct {
	// point is the write point it killed itself at ("Apply#2"); empty:
	// the harness killed it after the operation had been answered.
	point string
	after bool // after the write returned; else before it started
	// stored: the operation's commit (its decisive write) was stored
	// before the process died.
	stored bool
}

// landed reports whether the operation's commit was stored.
func (k kill) landed() bool { return k.stored }

func (k kill) String() string {
	if k.point == "" {
		return "killed after the answer"
	}
	if k.after {
		return "killed after " + k.point
	}
	return "killed before " + k.point
}

// state is what a scenario's setup and operation leave for its check.
type state struct {
	tk      tokens    // the client's tokens before the operation
	got     tokens    // the operation's answer, when it came
	sub     string    // the person's subject
	sid     string    // the person's Keyward session
	jwks    []string  // the kids published before the operation
	keys    adminKeys // the admin API's key set before the operation
	subject string    // a single-use subject token
	signIn  *signIn   // the interrupted sign-in
	redeem  bool      // the kill interrupted the code redemption
}

// scenario is one operation killed at each of its write points.
type scenario struct {
	name string
	// atStart: the operation is the process's start (its first key set).
	atStart bool
	// commit names the method of the operation's decisive write, when it
	// is not the first: writes before it prepare, writes after it follow.
	commit string
	// setup runs in the process under test before the operation; its
	// writes are the same on every run, so the write points keep their
	// numbers.
	setup func(w *world, s *state)
	// op runs the operation and reports whether it was answered (false:
	// the broker died during it).
	op func(w *world, s *state) bool
	// check runs on the restarted broker.
	check func(w *world, s *state, k kill)
}

// TestCrashSafety kills keyward serve at every write point of each
// scenario, on bbolt and on PostgreSQL, restarts it on the same store, and
// checks what clients, administrators and verifiers then see.
func TestCrashSafety(t *testing.T) {
	bin := buildKeyward(t)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel() // the backends share nothing but the binary
			if be.available != nil {
				be.available(t) // one skip line for the whole half
			}
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) { runScenario(t, bin, be, sc) })
			}
		})
	}
}

// runScenario runs sc once with the writes only announced, the process
// killed from outside once the operation was answered; then once per
// write point the operation made and per side of it, the process killing
// itself there.
func runScenario(t *testing.T, bin string, be backend, sc scenario) {
	var points []string
	t.Run("answered", func(t *testing.T) {
		w := newWorld(t, bin, be)
		s := &state{}
		w.start("log")
		mark := 0
		if !sc.atStart {
			sc.setup(w, s)
			mark = len(w.proc.points())
			if !sc.op(w, s) {
				t.Fatalf("%s: no answer from a broker with no kill point:\n%s", sc.name, w.proc.out)
			}
		}
		points = w.proc.points()[mark:]
		t.Logf("write points: %q", points)
		w.crash()
		w.checkBolt()
		w.start("")
		sc.check(w, s, kill{stored: true})
		w.stop()
	})
	if len(points) == 0 {
		t.Fatalf("%s: the operation announced no write point (is the crash-test build wired to the store?)", sc.name)
	}
	commit := 0
	if sc.commit != "" {
		commit = slices.IndexFunc(points, func(p string) bool { return strings.HasPrefix(p, sc.commit+"#") })
		if commit < 0 {
			t.Fatalf("%s: no %s among the write points %q", sc.name, sc.commit, points)
		}
	}
	for i, p := range points {
		for _, after := range []bool{false, true} {
			k := kill{point: p, after: after, stored: i > commit || i == commit && after}
			t.Run(k.String(), func(t *testing.T) {
				w := newWorld(t, bin, be)
				s := &state{}
				side := "before"
				if after {
					side = "after"
				}
				w.start(p + ":" + side)
				if !sc.atStart {
					sc.setup(w, s)
					if sc.op(w, s) {
						t.Fatalf("answered, want the broker dead at %s (write points %q):\n%s", k, points, w.proc.out)
					}
				}
				w.killed()
				w.checkBolt()
				w.start("")
				sc.check(w, s, k)
				w.stop()
			})
		}
	}
}

var scenarios = []scenario{
	{name: "first start", atStart: true, check: checkKeysUsable},
	{name: "sign-in", setup: func(*world, *state) {}, op: signInOp, check: signInCheck},
	{name: "refresh", setup: signedIn, op: refreshOp, check: refreshCheck},
	{name: "single-use exchange", setup: exchangeSetup, op: exchangeOp, check: exchangeCheck},
	{name: "deprovision", setup: signedIn, op: deprovisionOp, check: deprovisionCheck},
	{name: "session end", commit: "EndSession", setup: signedIn, op: sessionEndOp, check: sessionEndCheck},
	{name: "key rotation", setup: rotationSetup, op: rotationOp, check: rotationCheck},
}

// signedIn: the person has signed in; the client holds the tokens.
func signedIn(w *world, s *state) {
	s.tk = w.signInFully()
	c := w.claims(s.tk.access)
	s.sub, _ = c["sub"].(string)
	s.sid, _ = c["sid"].(string)
	if s.sub == "" || s.sid == "" {
		w.t.Fatalf("access token without sub or sid: %v", c)
	}
}

// --- sign-in

func signInOp(w *world, s *state) bool {
	s.signIn = w.newSignIn()
	if err := s.signIn.toCode(); err != nil {
		return false
	}
	a := s.signIn.redeem()
	if a.err != nil {
		s.redeem = true
		return false
	}
	s.got = w.tokensOf(a, "code redemption")
	return true
}

// signInCheck: an interrupted sign-in step can be retried or the sign-in
// started over; a code is never redeemed twice across the crash; the
// tokens of an answered sign-in work after the restart.
func signInCheck(w *world, s *state, k kill) {
	t := w.t
	switch {
	case k.point == "":
		w.tokensOf(w.refresh(s.got.refresh), "refresh after the restart")
		w.mustVerify(s.got.access)
	case s.redeem:
		a := s.signIn.redeem() // the client retries the same code
		if k.after {
			// The code was redeemed and its tokens stored, the answer lost:
			// a second redemption is code reuse.
			wantError(t, a, "retried redemption of a code redeemed before the kill", "invalid_grant")
			break
		}
		tk := w.tokensOf(a, "retried redemption of a code the kill left unused")
		w.mustVerify(tk.access)
		wantError(t, s.signIn.redeem(), "second redemption of the code", "invalid_grant")
		// Code reuse revokes what the code gave (RFC 6749 §4.1.2).
		wantError(t, w.refresh(tk.refresh), "refresh token of a reused code", "invalid_grant")
	default:
		// The browser retries the step it was on: it may go on (then the
		// code it reaches works) or end on an error page (a replayed
		// callback: 502 when the upstream refuses its code a second time,
		// 400 when the sign-in it belonged to is over); never a 500, which
		// would be a store the kill left inconsistent.
		a := s.signIn.step()
		if a.err != nil || a.status == http.StatusInternalServerError {
			t.Errorf("retrying the interrupted sign-in step %s: %d %v, want a redirect or an error page:\n%.500s", s.signIn.next, a.status, a.err, a.body)
		}
		t.Logf("retried sign-in step: %d", a.status)
		if a.header.Get("Location") != "" && s.signIn.toCode() == nil {
			tk := w.tokensOf(s.signIn.redeem(), "code of the retried sign-in")
			w.mustVerify(tk.access)
		}
	}
	// Whatever happened, signing in afresh works.
	tk := w.signInFully()
	w.tokensOf(w.refresh(tk.refresh), "refresh of a fresh sign-in")
	w.mustVerify(tk.access)
}

// --- refresh

func refreshOp(w *world, s *state) bool {
	a := w.refresh(s.tk.refresh)
	if a.err != nil {
		return false
	}
	s.got = w.tokensOf(a, "refresh")
	return true
}

// refreshCheck: the family has one live lineage. The token the client held
// works again, within the grace window; the lineage it starts works; and
// the held token works at most once more in all than the grace rule allows
// (counting a use whose answer the kill lost), after which reuse detection
// revokes the whole family, so no second lineage outlives it.
func refreshCheck(w *world, s *state, k kill) {
	t := w.t
	if k.point == "" { // the client got its new token before the kill
		w.tokensOf(w.refresh(s.got.refresh), "refresh with the token answered before the kill")
		return
	}
	r1 := w.tokensOf(w.refresh(s.tk.refresh), "retried refresh with the token held before the kill")
	r2 := w.tokensOf(w.refresh(r1.refresh), "refresh with the retried refresh's token")
	w.mustVerify(r2.access)
	held := []string{r2.refresh}
	more := 0
	for {
		a := w.refresh(s.tk.refresh)
		if a.status != http.StatusOK {
			wantError(t, a, "the held token beyond its grace use", "invalid_grant")
			break
		}
		more++
		held = append(held, w.tokensOf(a, "grace use").refresh)
		if more > 2 {
			t.Fatalf("the token held before the kill keeps working (%d more uses)", more)
		}
	}
	want := 1 // the retry rotated it; one grace use is left
	if k.landed() {
		want = 0 // the lost answer rotated it; the retry took the grace use
	}
	if more != want {
		t.Errorf("after the retry the held token worked %d more times, want %d (one grace use in all)", more, want)
	}
	for i, rt := range held {
		wantError(t, w.refresh(rt), fmt.Sprintf("refresh token %d of the family after reuse detection", i), "invalid_grant")
	}
}

// --- single-use token exchange

func exchangeSetup(w *world, s *state) {
	s.subject = w.ciToken()
	// The trust rule's issuer is fetched on its first token: a first
	// exchange (of another token) makes the runs' writes the same.
	if a := w.exchange(w.ciToken()); a.status != http.StatusOK {
		t := w.t
		t.Fatalf("first exchange: %d %v\n%.500s", a.status, a.err, a.body)
	}
}

func (w *world) ciToken() string {
	return w.idp.MintJWT(map[string]any{"aud": w.issuer, "sub": "repo:acme/api", "repository": "acme/api", "jti": randomString()})
}

func (w *world) exchange(subject string) answer {
	return w.post(noRedirects, w.issuer+"/token", url.Values{
		"grant_type": {grantExchange}, "client_id": {ciID}, "audience": {"deploy-api"},
		"subject_token": {subject}, "subject_token_type": {tokenTypeJWT},
	}, "", "")
}

func exchangeOp(w *world, s *state) bool {
	a := w.exchange(s.subject)
	if a.err != nil {
		return false
	}
	if a.status != http.StatusOK {
		w.t.Fatalf("exchange: %d\n%.500s", a.status, a.body)
	}
	return true
}

// exchangeCheck: a single-use subject token is exchanged once in all,
// counting an exchange whose answer the kill lost.
func exchangeCheck(w *world, s *state, k kill) {
	t := w.t
	uses := 0
	if k.landed() {
		uses = 1
	}
	for range 2 {
		a := w.exchange(s.subject)
		if a.status == http.StatusOK {
			uses++
			continue
		}
		wantError(t, a, "exchange of a single-use token used before", "invalid_grant")
	}
	if uses != 1 {
		t.Errorf("the single-use subject token was exchanged %d times across the kill, want 1", uses)
	}
	if a := w.exchange(w.ciToken()); a.status != http.StatusOK {
		t.Errorf("exchange of a new token after the restart: %d\n%.500s", a.status, a.body)
	}
}

// --- deprovisioning

func deprovisionOp(w *world, s *state) bool {
	a := w.adminCall(http.MethodPost, "/subjects/"+url.PathEscape(s.sub)+"/deprovision", `{"reason":"crash test"}`)
	if a.err != nil {
		return false
	}
	if a.status != http.StatusOK {
		w.t.Fatalf("deprovision: %d\n%.500s", a.status, a.body)
	}
	return true
}

// deprovisionCheck: all or nothing. A deprovisioning that was stored
// (acknowledged or not) holds after the restart: refresh refused, the feed
// lists the person, sign-in refused. One that was not leaves the person
// untouched, and the administrator's retry takes effect.
func deprovisionCheck(w *world, s *state, k kill) {
	t := w.t
	listed := w.feedLists("subject", s.sub)
	if k.landed() {
		if !listed {
			t.Errorf("the revocation feed does not list the deprovisioned subject after the restart")
		}
		wantError(t, w.refresh(s.tk.refresh), "refresh of a deprovisioned person", "invalid_grant")
	} else {
		if listed {
			t.Errorf("the feed lists the subject, though the kill came before the deprovisioning was stored")
		}
		tk := w.tokensOf(w.refresh(s.tk.refresh), "refresh of a person not deprovisioned")
		if !deprovisionOp(w, s) {
			t.Fatal("the retried deprovisioning got no answer")
		}
		wantError(t, w.refresh(tk.refresh), "refresh after the retried deprovisioning", "invalid_grant")
		if !w.feedLists("subject", s.sub) {
			t.Errorf("the revocation feed does not list the subject after the retried deprovisioning")
		}
	}
	if w.signInReachesCode() {
		t.Errorf("a deprovisioned person signed in again")
	}
}

// feedLists reports whether the revocation feed holds an entry of kind
// ("subject" or "session") for id (a subject or a session id).
func (w *world) feedLists(kind, id string) bool {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.issuer+"/revocations?after=0", nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.SetBasicAuth(appID, appSecret)
	a := do(noRedirects, req)
	if a.err != nil || a.status != http.StatusOK {
		w.t.Fatalf("GET /revocations: %d %v\n%.500s", a.status, a.err, a.body)
	}
	var feed struct {
		Entries []feedEntry `json:"entries"`
	}
	if err := json.Unmarshal(a.body, &feed); err != nil {
		w.t.Fatalf("GET /revocations: %v", err)
	}
	return slices.ContainsFunc(feed.Entries, func(e feedEntry) bool {
		return e.Kind == kind && (kind == "subject" && e.Sub == id || kind == "session" && e.Sid == id)
	})
}

type feedEntry struct {
	Kind string `json:"kind"`
	Sub  string `json:"sub"`
	Sid  string `json:"sid"`
}

// signInReachesCode reports whether a new sign-in gets the app a code.
func (w *world) signInReachesCode() bool {
	s := w.newSignIn()
	for range 5 {
		a := s.step()
		if s.code != "" {
			return true
		}
		if a.err != nil || a.header.Get("Location") == "" {
			return false
		}
	}
	return false
}

// --- ending a session (the admin API; /end_session, back-channel logout
// and the upstream re-check end sessions the same way)

func sessionEndOp(w *world, s *state) bool {
	a := w.adminCall(http.MethodDelete, "/sessions/"+url.PathEscape(s.sid)+"?reason=crash+test", "")
	if a.err != nil {
		return false
	}
	if a.status != http.StatusOK {
		w.t.Fatalf("end session: %d\n%.500s", a.status, a.body)
	}
	return true
}

// sessionEndCheck: all or nothing. A session ended (acknowledged or not)
// is in the revocation feed, so edges drop its access tokens, and its
// refresh token is refused; one not ended is untouched, and the
// administrator's retry ends it.
func sessionEndCheck(w *world, s *state, k kill) {
	t := w.t
	ended, listed := !w.sessionExists(s.sub, s.sid), w.feedLists("session", s.sid)
	if k.landed() && !ended {
		t.Errorf("the session survived the restart, though its end was stored before the kill")
	}
	if ended != listed {
		t.Errorf("after the restart the session is ended: %v, but in the revocation feed: %v; want both or neither (edges would keep accepting its access tokens)", ended, listed)
	}
	if ended {
		wantError(t, w.refresh(s.tk.refresh), "refresh in an ended session", "invalid_grant")
		return
	}
	tk := w.tokensOf(w.refresh(s.tk.refresh), "refresh in a session not ended")
	if !sessionEndOp(w, s) {
		t.Fatal("the retried end of session got no answer")
	}
	wantError(t, w.refresh(tk.refresh), "refresh after the retried end of session", "invalid_grant")
	if !w.feedLists("session", s.sid) {
		t.Errorf("the revocation feed does not list the session after the retried end")
	}
}

// sessionExists reports whether the admin API lists session sid of sub.
func (w *world) sessionExists(sub, sid string) bool {
	w.t.Helper()
	a := w.adminCall(http.MethodGet, "/sessions?subject="+url.QueryEscape(sub), "")
	if a.err != nil || a.status != http.StatusOK {
		w.t.Fatalf("GET /admin/v1/sessions: %d %v\n%.500s", a.status, a.err, a.body)
	}
	var list struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(a.body, &list); err != nil {
		w.t.Fatal(err)
	}
	return slices.ContainsFunc(list.Sessions, func(x struct {
		ID string `json:"id"`
	}) bool {
		return x.ID == sid
	})
}

// --- key rotation

func rotationSetup(w *world, s *state) {
	signedIn(w, s)
	s.jwks = w.jwksKids()
	s.keys = w.adminKeys()
}

func rotationOp(w *world, s *state) bool {
	a := w.adminCall(http.MethodPost, "/keys/rotate", `{"reason":"crash test"}`)
	if a.err != nil {
		return false
	}
	if a.status != http.StatusOK {
		w.t.Fatalf("rotate: %d\n%.500s", a.status, a.body)
	}
	return true
}

// rotationCheck: no signing key lost or duplicated, tokens signed before
// the kill still verify, the rotation was stored or not at all, and the
// administrator's retry works.
func rotationCheck(w *world, s *state, k kill) {
	t := w.t
	w.checkJWKSKeeps(s.jwks)
	w.mustVerify(s.tk.access)
	got := w.adminKeys()
	if k.landed() && cmp.Equal(s.keys, got) {
		t.Errorf("the key set is unchanged after the rotation was stored: %+v", got)
	}
	if !k.landed() {
		if diff := cmp.Diff(s.keys, got); diff != "" {
			t.Errorf("the key set changed though the kill came before the rotation was stored (-before +after):\n%s", diff)
		}
	}
	if !rotationOp(w, s) {
		t.Fatal("the retried rotation got no answer")
	}
	w.checkJWKSKeeps(s.jwks)
	checkKeysUsable(w, s, k)
	w.mustVerify(s.tk.access)
}

// checkKeysUsable: one current key, one next key, no kid twice in the
// JWKS, and a new sign-in's token verifies.
func checkKeysUsable(w *world, _ *state, _ kill) {
	t := w.t
	w.checkJWKSKeeps(nil)
	states := map[string]int{}
	for _, key := range w.adminKeys().Keys {
		states[key.State]++
	}
	if states["current"] != 1 || states["next"] != 1 {
		t.Errorf("key states %v, want one current and one next key", states)
	}
	w.mustVerify(w.signInFully().access)
}

type adminKeys struct {
	Keys []struct {
		ID          string `json:"kid"`
		State       string `json:"state"`
		ActivatesAt string `json:"activates_at"`
	} `json:"keys"`
	NextRotation string `json:"next_rotation"`
}

func (w *world) adminKeys() adminKeys {
	w.t.Helper()
	a := w.adminCall(http.MethodGet, "/keys", "")
	if a.err != nil || a.status != http.StatusOK {
		w.t.Fatalf("GET /admin/v1/keys: %d %v\n%.500s", a.status, a.err, a.body)
	}
	var ks adminKeys
	if err := json.Unmarshal(a.body, &ks); err != nil {
		w.t.Fatal(err)
	}
	return ks
}

func (w *world) jwksKids() []string {
	w.t.Helper()
	a := w.get(noRedirects, w.issuer+"/keys")
	if a.err != nil || a.status != http.StatusOK {
		w.t.Fatalf("GET /keys: %d %v", a.status, a.err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(a.body, &set); err != nil {
		w.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// checkJWKSKeeps checks that the JWKS names no kid twice and still
// publishes every kid of before.
func (w *world) checkJWKSKeeps(before []string) {
	t := w.t
	t.Helper()
	kids := w.jwksKids()
	seen := map[string]bool{}
	for _, k := range kids {
		if seen[k] {
			t.Errorf("JWKS publishes kid %s twice: %q", k, kids)
		}
		seen[k] = true
	}
	for _, k := range before {
		if !seen[k] {
			t.Errorf("kid %s, published before the kill, is gone from the JWKS %q", k, kids)
		}
	}
	if len(kids) == 0 {
		t.Errorf("the JWKS is empty")
	}
}

// --- verifying and errors

// mustVerify verifies an access token as an edge would, against the
// broker's JWKS as it is now.
func (w *world) mustVerify(token string) {
	w.t.Helper()
	v, err := verify.New(w.t.Context(), verify.Config{Issuer: w.issuer, Audiences: []string{appID}})
	if err != nil {
		w.t.Fatalf("verify.New: %v", err)
	}
	if _, err := v.Verify(w.t.Context(), token); err != nil {
		w.t.Errorf("Verify(access token) = %v, want it valid", err)
	}
}

// claims decodes a JWT's payload (its signature is verified elsewhere).
func (w *world) claims(jwt string) map[string]any {
	w.t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		w.t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		w.t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// wantError checks that a is an OAuth error answer with code.
func wantError(t *testing.T, a answer, what, code string) {
	t.Helper()
	if a.err != nil {
		t.Errorf("%s: %v, want %s", what, a.err, code)
		return
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	if a.status != http.StatusBadRequest || e.Error != code {
		t.Errorf("%s: %d %s, want 400 %s", what, a.status, a.body, code)
	}
}

// TestProductBuildHasNoKillPoints: the kill points are compiled only into
// the crash-test build; the binary built without the tag has the identity
// wrapper instead.
func TestProductBuildHasNoKillPoints(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	files := func(tags ...string) []string {
		args := append([]string{"list"}, tags...)
		args = append(args, "-f", "{{join .GoFiles \" \"}}", "github.com/keyward/keyward/cmd/keyward")
		out, err := exec.CommandContext(t.Context(), goBin, args...).Output()
		if err != nil {
			t.Fatalf("go %v: %v", args, err)
		}
		return strings.Fields(string(out))
	}
	product, test := files(), files("-tags", crashTag)
	if slices.Contains(product, "crashpoints.go") || !slices.Contains(product, "crashpoints_off.go") {
		t.Errorf("the product build of cmd/keyward compiles %q, want crashpoints_off.go and not crashpoints.go", product)
	}
	if !slices.Contains(test, "crashpoints.go") || slices.Contains(test, "crashpoints_off.go") {
		t.Errorf("the crash-test build compiles %q, want crashpoints.go and not crashpoints_off.go", test)
	}
}
