package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/test/fakeidp"
)

// Idps are the identity providers a `keyward serve` process under test
// talks to, served from this process: an upstream with AutoLogin (for the
// sign-ins that start refresh chains) and a CI issuer (whose JWTs trust rule
// "bench-ci" accepts for token exchange).
type Idps struct {
	UpstreamURL string
	CIURL       string
	ci          *fakeidp.Server
	servers     []*http.Server
}

// Upstream client of the brokers at the fake upstream.
const (
	upstreamClientID = "keyward"
	upstreamSecret   = "bench-upstream-secret-0123456789-0123456789"
)

// StartIdps starts both providers; callbacks are the brokers' /callback
// URLs, which the upstream accepts as redirect URIs.
func StartIdps(callbacks []string) (*Idps, error) {
	d := &Idps{}
	up, upURL, err := listenURL()
	if err != nil {
		return nil, err
	}
	d.UpstreamURL = upURL
	idp, err := fakeidp.New(fakeidp.Config{
		Issuer:    upURL,
		Users:     fakeidp.DemoUsers(),
		Clients:   []fakeidp.Client{{ID: upstreamClientID, Secret: upstreamSecret, RedirectURIs: callbacks}},
		AutoLogin: "alice",
	})
	if err != nil {
		_ = up.Close()
		return nil, fmt.Errorf("fakeidp: %w", err)
	}
	d.serve(up, idp.Handler())
	ci, ciURL, err := listenURL()
	if err != nil {
		d.Close()
		return nil, err
	}
	d.CIURL = ciURL
	if d.ci, err = fakeidp.New(fakeidp.Config{Issuer: ciURL, Users: fakeidp.DemoUsers()}); err != nil {
		_ = ci.Close()
		d.Close()
		return nil, fmt.Errorf("fakeidp (CI issuer): %w", err)
	}
	d.serve(ci, d.ci.Handler())
	return d, nil
}

func listenURL() (net.Listener, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	return ln, "http://" + ln.Addr().String(), nil
}

func (d *Idps) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	d.servers = append(d.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "serve %s: %v\n", ln.Addr(), err)
		}
	}()
}

// Close stops both providers.
func (d *Idps) Close() {
	for _, s := range d.servers {
		_ = s.Close()
	}
}

// MintCIToken returns a CI JWT that trust rule "bench-ci" accepts, expiring
// after ttl (see Env.MintCIToken).
func (d *Idps) MintCIToken(ttl time.Duration) string {
	return d.ci.MintJWT(map[string]any{
		"aud": ciAudience, "sub": "repo:example/app:ref:refs/heads/main",
		"repository": "example/app", "ref": "refs/heads/main", "workflow": "deploy",
		"jti": "bench-ci-token", "exp": time.Now().Add(ttl).Unix(),
	})
}

// ServeConfig is the keyward.yaml of a `keyward serve` under test: issuer
// and listen at addr, bbolt at dbPath (fsync on, as in production), tokens
// signed with alg, the two providers of d, the relying party ClientID and
// the public exchange client ExchangeClientID with trust rule "bench-ci"
// (as Env wires them in process), login limits raised (every sign-in comes
// from 127.0.0.1), metrics on metricsAddr (with Go's profiler when pprof:
// a binary older than metrics.pprof refuses it), JSON log at info.
func (d *Idps) ServeConfig(addr, metricsAddr, dbPath, secretFile, alg string, pprof bool) string {
	profiler := ""
	if pprof {
		profiler = ", pprof: true"
	}
	return fmt.Sprintf(`issuer: http://%[1]s
listen: %[1]s
sessionSecretFile: %[2]s
store: {path: %[3]s}
keys: {algorithm: %[4]s}
upstreams:
  - {id: corp, issuer: %[5]s, clientID: %[6]s, clientSecret: %[7]s}
clients:
  - {id: %[8]s, secret: %[9]s, redirectURIs: [%[10]s]}
  - {id: %[11]s, grantTypes: [urn:ietf:params:oauth:grant-type:token-exchange], scopes: [%[12]s], audiences: [%[13]s]}
trust:
  - name: bench-ci
    issuer: %[14]s
    audience: %[15]s
    claims: {repository: example/app, ref: "refs/heads/*"}
    subject: "ci:{repository}:{ref}"
    audiences: [%[13]s]
    scopes: [%[12]s]
    maxTTL: 5m
    publicClient: true
limits: {loginAttemptsPerMinute: 100000, loginAttemptsBurst: 10000, clientTokenRequestsPerSecond: 10000000, clientTokenBurst: 10000000}
metrics: {listen: %[16]s%[17]s}
logging: {level: info, format: json}
`, addr, secretFile, dbPath, alg, d.UpstreamURL, upstreamClientID, upstreamSecret,
		ClientID, ClientSecret, ClientRedirect, ExchangeClientID, ExchangeScope, ExchangeAudience,
		d.CIURL, ciAudience, metricsAddr, profiler)
}

// StoreCounters are the store metrics of a `keyward serve` (see
// cmd/keyward/store_metrics.go); Found is false when the binary exports
// none (a build from before they existed).
type StoreCounters struct {
	Found         bool
	WriteTxs      float64 // keyward_store_write_transactions_total
	Commits       float64 // keyward_store_commits_total
	SyncedCommits float64 // keyward_store_synced_commits_total (bbolt)
}

// ScrapeStoreCounters reads the store counters from a /metrics URL.
func ScrapeStoreCounters(ctx context.Context, c *http.Client, metricsURL string) (StoreCounters, error) {
	var sc StoreCounters
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return sc, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return sc, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sc, fmt.Errorf("GET %s: status %d", metricsURL, resp.StatusCode)
	}
	fields := map[string]*float64{
		"keyward_store_write_transactions_total": &sc.WriteTxs,
		"keyward_store_commits_total":            &sc.Commits,
		"keyward_store_synced_commits_total":     &sc.SyncedCommits,
	}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := s.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		dst, ok := fields[name]
		if !ok {
			continue
		}
		_, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return sc, fmt.Errorf("%s: %q: %w", metricsURL, line, err)
		}
		*dst += v
		sc.Found = true
	}
	return sc, s.Err()
}
