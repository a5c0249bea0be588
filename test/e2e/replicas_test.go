package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/cmd/config"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/store/postgres"
	"github.com/keyward/keyward/store/postgres/pgtest"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/test/fakeidp"
)

// replicaSet is several brokers on one PostgreSQL database behind one
// issuer URL: a reverse proxy (the load balancer) sends each request to the
// replica that route picks. The replicas share the session secret and the
// fosite HMAC secret (brokertest's fixed ones) and one fake upstream.
type replicaSet struct {
	*env    // issuer = the proxy; env.b is replica 0
	envs    []*brokertest.Env
	stores  []*postgres.Store
	direct  []string // each replica's own base URL, bypassing the proxy
	served  []atomic.Int64
	route   atomic.Value // func(*http.Request) int
	rrCount atomic.Uint64
}

// addrListener accepts on a replica's own listener but reports the proxy's
// address, so that the replica's issuer is the proxy URL.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// newReplicaSet starts n brokers on one fresh PostgreSQL database.
func newReplicaSet(t *testing.T, n int, kc keys.Config) *replicaSet {
	t.Helper()
	dsn := pgtest.DSN(t)
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + front.Addr().String()
	rs := &replicaSet{env: &env{t: t, clock: &clock{}, issuer: issuer}, served: make([]atomic.Int64, n)}
	rs.routeTo(0)

	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:    "http://" + idpLn.Addr().String(),
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: brokertest.UpstreamClientID, Secret: brokertest.UpstreamSecret, RedirectURIs: []string{issuer + "/callback"}}},
		AutoLogin: "alice",
	})
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, idp.Handler(), idpLn)
	rs.idps = []*fakeidp.Server{idp}

	var backends []*url.URL
	for i := range n {
		st, err := postgres.Open(t.Context(), postgres.Options{DSN: dsn, Migrate: true, MaxConns: 8, Logger: brokertest.TestLogger()})
		if err != nil {
			t.Fatalf("replica %d: postgres.Open() = %v", i, err)
		}
		t.Cleanup(func() { _ = st.Close() })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("http://" + ln.Addr().String())
		backends = append(backends, u)
		rs.direct = append(rs.direct, u.String())
		be := brokertest.New(t, brokertest.Options{
			Store:     st,
			Listener:  addrListener{Listener: ln, addr: front.Addr()},
			IdPs:      rs.idps,
			AutoLogin: "alice",
			Clients: []broker.Client{
				{ID: appID, Name: "The App", Secret: appSecret, RedirectURIs: []string{appRedir}},
			},
			Keys: kc,
			Now:  rs.clock.Now,
		})
		rs.stores = append(rs.stores, st)
		rs.envs = append(rs.envs, be)
	}
	rs.b, rs.keys = rs.envs[0], rs.envs[0].Keys

	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		i := rs.route.Load().(func(*http.Request) int)(pr.In)
		rs.served[i].Add(1)
		pr.SetURL(backends[i])
		pr.Out.Host = pr.In.Host // the issuer's host, as a load balancer keeps it
	}}
	serveTest(t, proxy, front)
	return rs
}

func serveTest(t *testing.T, h http.Handler, ln net.Listener) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// routeTo sends every request to replica i.
func (rs *replicaSet) routeTo(i int) {
	rs.route.Store(func(*http.Request) int { return i })
}

// roundRobin spreads the requests over every replica in turn.
func (rs *replicaSet) roundRobin() {
	rs.route.Store(func(*http.Request) int { return int(rs.rrCount.Add(1) % uint64(len(rs.envs))) })
}

// on runs f with every request routed to replica i, and checks that
// replica i served at least one request.
func (rs *replicaSet) on(i int, f func()) {
	rs.t.Helper()
	before := rs.served[i].Load()
	rs.routeTo(i)
	f()
	if rs.served[i].Load() == before {
		rs.t.Fatalf("replica %d served nothing", i)
	}
}

// TestReplicasShareFlows: two brokers on one PostgreSQL database, no sticky
// sessions. A flow started on one replica finishes on the other; codes,
// refresh families, reuse detection and deprovisioning are the same on both.
func TestReplicasShareFlows(t *testing.T) {
	rs := newReplicaSet(t, 2, keys.Config{})
	c := rs.client(appID, appSecret, appRedir, nil)

	t.Run("sign in on A, redeem and refresh on B", func(t *testing.T) {
		c.t = t
		l := newLogin()
		var code string
		rs.on(0, func() { code = c.code(c.authorize(l), l) })
		var status int
		var m map[string]any
		rs.on(1, func() { status, m = c.exchange(code, l.verifier) })
		if status != http.StatusOK {
			t.Fatalf("redeem on B = %d %v", status, m)
		}
		rt := m["refresh_token"].(string)
		verifyAccessToken(t, rs.env, m["access_token"].(string), appID)
		rs.on(1, func() { status, m = c.refresh(rt) })
		if status != http.StatusOK {
			t.Fatalf("refresh on B = %d %v", status, m)
		}
		// The code is used up for both replicas.
		rs.on(0, func() { status, m = c.exchange(code, l.verifier) })
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("second redeem on A = %d %v, want 400 invalid_grant", status, m)
		}
	})

	t.Run("authorize on A, upstream callback on B", func(t *testing.T) {
		c := rs.client(appID, appSecret, appRedir, nil) // a new browser: no session yet
		c.t = t
		l := newLogin()
		// The login attempt and the browser binding live in the database.
		rs.route.Store(func(r *http.Request) int {
			if r.URL.Path == "/callback" {
				return 1
			}
			return 0
		})
		a, b := rs.served[0].Load(), rs.served[1].Load()
		code := c.code(c.authorize(l), l)
		if rs.served[0].Load() == a || rs.served[1].Load() == b {
			t.Fatalf("requests served: A %d, B %d; want both", rs.served[0].Load()-a, rs.served[1].Load()-b)
		}
		var status int
		var m map[string]any
		rs.on(0, func() { status, m = c.exchange(code, l.verifier) })
		if status != http.StatusOK {
			t.Fatalf("redeem on A = %d %v", status, m)
		}
		// Single sign-on: the session cookie B set answers on A.
		l2 := newLogin()
		rs.on(0, func() { c.code(c.authorize(l2), l2) })
	})

	t.Run("refresh reuse detected across replicas", func(t *testing.T) {
		c.t = t
		var tok map[string]any
		var status int
		rs.on(0, func() {
			l := newLogin()
			status, tok = c.exchange(c.code(c.authorize(l), l), l.verifier)
		})
		rt1 := tok["refresh_token"].(string)
		var m map[string]any
		rs.on(0, func() { status, m = c.refresh(rt1) })
		if status != http.StatusOK {
			t.Fatalf("refresh on A = %d %v", status, m)
		}
		rt2 := m["refresh_token"].(string)
		rs.clock.Advance(11 * time.Second) // past the 10s grace period
		rs.on(1, func() { status, m = c.refresh(rt1) })
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("reuse of a rotated refresh token on B = %d %v, want 400 invalid_grant", status, m)
		}
		rs.on(0, func() { status, m = c.refresh(rt2) })
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("refresh on A after reuse on B = %d %v, want 400 invalid_grant (family revoked)", status, m)
		}
	})

	t.Run("deprovision on A refused on B at once", func(t *testing.T) {
		c.t = t
		var tok map[string]any
		rs.on(1, func() {
			l := newLogin()
			_, tok = c.exchange(c.code(c.authorize(l), l), l.verifier)
		})
		_, claims := verifyAccessToken(t, rs.env, tok["access_token"].(string), appID)
		sub := claims["sub"].(string)
		if _, err := rs.envs[0].Broker.Deprovision(t.Context(), sub, "left the company", "test"); err != nil {
			t.Fatalf("Deprovision on A = %v", err)
		}
		var status int
		var m map[string]any
		rs.on(1, func() { status, m = c.refresh(tok["refresh_token"].(string)) })
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("refresh on B after deprovisioning on A = %d %v, want 400 invalid_grant", status, m)
		}
		rs.on(1, func() { m = c.introspect(tok["access_token"].(string)) })
		if m["active"] != false {
			t.Errorf("introspect on B after deprovisioning on A = %v, want inactive", m)
		}
		// A new sign-in through B shows "Access removed".
		l := newLogin()
		var resp *http.Response
		rs.on(1, func() { resp = c.authorize(l) })
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-in on B after deprovisioning = %d, want 403", resp.StatusCode)
		}
	})
}

// jwksOf fetches a replica's own /keys (not through the proxy).
func jwksOf(base string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	resp, err := http.Get(base + "/keys")
	if err != nil {
		return set, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("GET %s/keys: %d", base, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&set)
	return set, err
}

// verifyWith verifies an access token against set, as a gateway would.
// fosite stamps iat and exp with the real clock.
func verifyWith(set jose.JSONWebKeySet, raw, issuer string) (string, error) {
	var kid string
	_, err := jwt.Parse(raw, func(tok *jwt.Token) (any, error) {
		kid, _ = tok.Header["kid"].(string)
		ks := set.Key(kid)
		if len(ks) != 1 {
			return nil, fmt.Errorf("kid %q is not in the JWKS", kid)
		}
		return ks[0].Key, nil
	}, jwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}), jwt.WithIssuer(issuer), jwt.WithAudience(appID),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	return kid, err
}

// TestReplicasRotateUnderLoad: while both replicas answer refresh grants
// round-robin, both key managers run the due rotation step at once. Exactly
// one new key is stored, and every access token issued before, during and
// after verifies against the /keys of each replica, fetched right after the
// token was issued.
func TestReplicasRotateUnderLoad(t *testing.T) {
	const period = time.Hour
	rs := newReplicaSet(t, 2, keys.Config{RotationPeriod: config.Duration(period), JWKSMaxAge: config.Duration(10 * time.Minute)})
	c := rs.client(appID, appSecret, appRedir, nil)
	before, err := rs.stores[0].GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const workers = 4
	var families []string
	for range workers {
		tok, _ := c.signIn()
		families = append(families, tok.RefreshToken)
	}
	rs.roundRobin()

	var (
		done, verified, failed atomic.Int64
		stop                   atomic.Bool
		mu                     sync.Mutex
		failures               []string
		kidsSeen               = map[string]int{} // kid → tokens it signed
		progress               = make(chan struct{}, 1)
		workersDone            = make(chan struct{})
	)
	fail := func(format string, args ...any) {
		failed.Add(1)
		mu.Lock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rt := families[w]
			for !stop.Load() {
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, rs.issuer+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(appID, appSecret)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					fail("worker %d: POST /token: %v", w, err)
					return
				}
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail("worker %d: refresh = %d %v", w, resp.StatusCode, m)
					return
				}
				rt = m["refresh_token"].(string)
				at := m["access_token"].(string)
				signedBy := ""
				for i, base := range rs.direct {
					set, err := jwksOf(base)
					if err != nil {
						fail("replica %d: %v", i, err)
						continue
					}
					kid, err := verifyWith(set, at, rs.issuer)
					if err != nil {
						fail("worker %d: token signed by %s does not verify with replica %d's /keys: %v", w, kid, i, err)
						continue
					}
					signedBy = kid
					verified.Add(1)
				}
				mu.Lock()
				kidsSeen[signedBy]++
				mu.Unlock()
				done.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(workersDone)
	}()
	// waitFor returns once n refreshes are done, or every worker stopped.
	waitFor := func(n int64) {
		for done.Load() < n {
			select {
			case <-progress:
			case <-workersDone:
				return
			}
		}
	}
	waitFor(20)

	// Both replicas' rotation loops find the step due at once.
	rs.clock.Advance(period + time.Second)
	rotated := make([]bool, len(rs.envs))
	var rwg sync.WaitGroup
	for i, be := range rs.envs {
		rwg.Go(func() {
			var err error
			if rotated[i], err = be.Keys.Rotate(t.Context()); err != nil {
				fail("replica %d: Rotate() = %v", i, err)
			}
		})
	}
	rwg.Wait()
	waitFor(done.Load() + 20)
	stop.Store(true)
	wg.Wait()

	if n := failed.Load(); n > 0 {
		t.Fatalf("%d failures (%d verifications passed); first: %s", n, verified.Load(), strings.Join(failures, "\n"))
	}
	if rotated[0] == rotated[1] {
		t.Errorf("Rotate() = %v, want exactly one replica to rotate", rotated)
	}
	after, err := rs.stores[1].GetKeySet(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, k := range after.Keys {
		found := false
		for _, b := range before.Keys {
			found = found || b.ID == k.ID
		}
		if !found {
			added = append(added, k.ID)
		}
	}
	if len(added) != 1 || after.Version != before.Version+1 {
		t.Errorf("after the rotation: new keys %v, version %d → %d; want exactly one new key, one write", added, before.Version, after.Version)
	}
	for i, be := range rs.envs {
		cur := be.Keys.SigningKey().ID
		if !slicesContainsState(after, cur, store.KeyCurrent) {
			t.Errorf("replica %d signs with %s, not the stored current key", i, cur)
		}
	}
	if len(kidsSeen) != 2 {
		t.Errorf("tokens were signed by keys %v, want 2 keys (before and after the rotation)", kidsSeen)
	}
	t.Logf("%d refreshes, %d verifications, requests served: A %d, B %d", done.Load(), verified.Load(), rs.served[0].Load(), rs.served[1].Load())
}

func slicesContainsState(ks store.KeySet, kid string, state store.KeyState) bool {
	for _, k := range ks.Keys {
		if k.ID == kid && k.State == state {
			return true
		}
	}
	return false
}
