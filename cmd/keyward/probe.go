package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/federation"
)

// probeTimeout bounds the probe of one upstream or trusted issuer
// (discovery and JWKS together), like the server's upstream client.
const probeTimeout = 10 * time.Second

// maxProbeBody caps a discovery document or JWKS read by the probe.
const maxProbeBody = 1 << 20

// severity grades a probe finding; only errors make the probe fail.
type severity int

const (
	sevInfo severity = iota
	sevWarning
	sevError
)

func (s severity) String() string {
	switch s {
	case sevError:
		return "error"
	case sevWarning:
		return "warning"
	}
	return "info"
}

// finding is one result of the probe: the field path and what to do.
type finding struct {
	sev  severity
	path string
	msg  string
}

// probeTarget is what the probe needs of one upstream.
type probeTarget struct {
	path      string // upstreams[i]
	id        string
	profile   federation.Profile
	issuer    string
	clientID  string
	scopes    []string
	tenants   []string
	logoutURL string
	githubAPI string // type github: the REST API base URL; "" for OIDC
	// emailVerified is claimMapping.emailVerified; trustEmail the upstream's.
	emailVerified string
	trustEmail    bool
}

func upstreamTargets(c *Config) []probeTarget {
	ts := make([]probeTarget, 0, len(c.Upstreams))
	for i, u := range c.Upstreams {
		if u.Type == federation.TypeGitHub {
			api := u.GitHubAPIURL
			if api == "" {
				api = federation.DefaultGitHubAPIURL(u.GitHubURL)
			}
			ts = append(ts, probeTarget{path: fmt.Sprintf("upstreams[%d]", i), id: u.ID, issuer: u.GitHubURL, clientID: u.ClientID, githubAPI: api})
			continue
		}
		ts = append(ts, probeTarget{
			path:      fmt.Sprintf("upstreams[%d]", i),
			id:        u.ID,
			profile:   u.Profile,
			issuer:    u.Issuer,
			clientID:  u.ClientID,
			scopes:    u.Scopes,
			tenants:   u.Tenants,
			logoutURL: u.LogoutURL,

			emailVerified: u.Claims.EmailVerified,
			trustEmail:    u.TrustEmail,
		})
	}
	return ts
}

// checkConfigProbe implements `keyward check-config --probe`: the checks of
// checkConfig, then, when the file parses, a probe of every upstream and
// trusted issuer. It returns an error when either found an error; warnings
// and info lines do not change the result.
func checkConfigProbe(ctx context.Context, path string, w io.Writer, client *http.Client, timeout time.Duration) error {
	checkErr := checkConfig(path, w)
	c, err := LoadConfig(path)
	if err != nil {
		return checkErr // It does not parse: checkConfig listed why.
	}
	errs, warns, err := probeConfig(ctx, c, client, w, timeout)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s: probe found %d %s, %d %s\n", path, errs, plural(errs, "error"), warns, plural(warns, "warning")); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	switch {
	case errs > 0:
		return fmt.Errorf("%s: the probe found %d %s", path, errs, plural(errs, "error"))
	case checkErr != nil:
		return checkErr
	}
	return nil
}

// probeConfig probes every upstream of c and every distinct trusted issuer
// with client, at most timeout each, writing a progress line per target
// and its findings to w. It returns the number of errors and warnings; its
// error is only a failure to write.
func probeConfig(ctx context.Context, c *Config, client *http.Client, w io.Writer, timeout time.Duration) (errs, warns int, err error) {
	report := func(label string, start time.Time, fs []finding) error {
		e, wn := 0, 0
		for _, f := range fs {
			switch f.sev {
			case sevError:
				e++
			case sevWarning:
				wn++
			}
		}
		errs += e
		warns += wn
		status := "ok"
		if e > 0 {
			status = fmt.Sprintf("%d %s", e, plural(e, "error"))
		}
		if wn > 0 {
			status += fmt.Sprintf(", %d %s", wn, plural(wn, "warning"))
		}
		var b strings.Builder
		fmt.Fprintf(&b, "probing %s %s in %d ms\n", label, status, time.Since(start).Milliseconds())
		for _, f := range fs {
			fmt.Fprintf(&b, "  %-8s %s: %s\n", f.sev, f.path, f.msg)
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	}
	for _, t := range upstreamTargets(c) {
		start := time.Now()
		fs := probeUpstream(ctx, client, timeout, t, c.Issuer)
		if err := report(fmt.Sprintf("%s (%s) %s", t.path, t.id, t.issuer), start, fs); err != nil {
			return errs, warns, err
		}
	}
	seen := map[string]bool{}
	for i, r := range c.Trust {
		if r.Issuer == "" || seen[r.Issuer] {
			continue
		}
		seen[r.Issuer] = true
		path := fmt.Sprintf("trust[%d]", i)
		start := time.Now()
		fs := probeTrustIssuer(ctx, client, timeout, path, r.Issuer)
		if err := report(fmt.Sprintf("%s (%s) %s", path, r.Name, r.Issuer), start, fs); err != nil {
			return errs, warns, err
		}
	}
	return errs, warns, nil
}

// discoveryDoc holds the discovery fields the probe checks. OIDC Discovery §3
type discoveryDoc struct {
	Issuer        string   `json:"issuer"`
	AuthEndpoint  string   `json:"authorization_endpoint"`
	TokenEndpoint string   `json:"token_endpoint"`
	JWKSURI       string   `json:"jwks_uri"`
	EndSession    string   `json:"end_session_endpoint"`
	Algorithms    []string `json:"id_token_signing_alg_values_supported"`
	Scopes        []string `json:"scopes_supported"`
	Claims        []string `json:"claims_supported"`
}

// discoveryURL is where the discovery document of issuer lives, as the
// server reads it (a templated Entra ID issuer through a shared tenant).
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(federation.DiscoveryURL(issuer), "/") + "/.well-known/openid-configuration"
}

// probeUpstream fetches t's discovery document and JWKS and checks what
// sign-in through it needs.
func probeUpstream(ctx context.Context, client *http.Client, timeout time.Duration, t probeTarget, brokerIssuer string) (fs []finding) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	add := func(sev severity, field, format string, args ...any) {
		path := t.path
		if field != "" {
			path += "." + field
		}
		fs = append(fs, finding{sev: sev, path: path, msg: fmt.Sprintf(format, args...)})
	}
	callback := strings.TrimRight(brokerIssuer, "/") + "/callback"
	defer func() { // Last, whatever failed: fs is the named result.
		add(sevInfo, "", "register %s as a redirect (callback) URL of client %q at the provider", callback, t.clientID)
	}()
	if t.githubAPI != "" {
		probeGitHub(ctx, client, timeout, t, add)
		return fs
	}

	var doc discoveryDoc
	if err := fetchJSON(ctx, client, discoveryURL(t.issuer), timeout, &doc); err != nil {
		add(sevError, "issuer", "discovery failed: %v; check the issuer URL (its discovery document is <issuer>/.well-known/openid-configuration) and that this host can reach it", err)
		return fs
	}
	templated := strings.Contains(doc.Issuer, federation.TenantPlaceholder)
	if doc.Issuer != t.issuer {
		msg := fmt.Sprintf("discovery says issuer %q but the config says %q; set issuer to discovery's string exactly", doc.Issuer, t.issuer)
		switch {
		case strings.TrimRight(doc.Issuer, "/") == strings.TrimRight(t.issuer, "/"):
			msg += " (they differ only in the trailing slash, which counts: Auth0's issuer ends with one)"
		case templated:
			msg += " (it is Entra ID's multi-tenant template: list the allowed tenant IDs in tenants)"
		}
		add(sevError, "issuer", "%s", msg)
	}
	if templated && len(t.tenants) == 0 {
		add(sevError, "tenants", "discovery's issuer %q is Entra ID's multi-tenant template, which any tenant's accounts match; list the tenant IDs (tid) allowed to sign in, e.g. tenants: [<your directory (tenant) ID>], or use your tenant's own issuer https://login.microsoftonline.com/<tenant ID>/v2.0", doc.Issuer)
	}
	if doc.AuthEndpoint == "" {
		add(sevError, "issuer", "discovery has no authorization_endpoint, so nobody can sign in; is this an OpenID Provider's issuer?")
	}
	if doc.TokenEndpoint == "" {
		add(sevError, "issuer", "discovery has no token_endpoint, so codes cannot be redeemed; is this an OpenID Provider's issuer?")
	}
	if len(doc.Scopes) > 0 {
		for j, s := range t.scopes {
			if !slices.Contains(doc.Scopes, s) {
				add(sevWarning, fmt.Sprintf("scopes[%d]", j), "%q is not in the provider's scopes_supported (%s); the provider may refuse the sign-in with invalid_scope, so remove it from scopes (write the list out if it came from the profile) unless the provider documents it", s, strings.Join(doc.Scopes, " "))
			}
		}
	}
	// An email reaches Keyward's tokens only when marked verified. A
	// claimMapping.emailVerified of the operator's own (Entra ID's
	// optional xms_edov) is often not listed, so only the default is checked.
	if len(doc.Claims) > 0 && !t.trustEmail && cmp.Or(t.emailVerified, "email_verified") == "email_verified" &&
		!slices.Contains(doc.Claims, "email_verified") {
		add(sevWarning, "trustEmail", "email_verified is not in the provider's claims_supported, so its emails may never count as verified and then stay out of Keyward's tokens; if the provider's administrators set the addresses, set trustEmail: true (docs/providers/README.md), or point claimMapping.emailVerified at the provider's own claim")
	}
	const cognitoLogout = "https://<your domain>/logout?client_id=<clientID>&logout_uri={post_logout_redirect_uri} (and register <issuer>/logout/upstream-done as a sign-out URL at Cognito)"
	switch {
	case t.logoutURL != "":
	case t.profile == federation.ProfileCognito:
		// Cognito's /logout, which newer discovery documents name, wants
		// client_id and logout_uri instead of RP-Initiated Logout's parameters.
		add(sevWarning, "logoutURL", "Cognito's logout endpoint needs client_id and logout_uri, which a standard logout request does not send; set logoutURL: %s", cognitoLogout)
	case doc.EndSession == "":
		add(sevWarning, "logoutURL", "discovery has no end_session_endpoint, so signing out of Keyward cannot end the session at the provider; set logoutURL to the provider's logout URL (Amazon Cognito: %s)", cognitoLogout)
	}
	if doc.JWKSURI == "" {
		add(sevError, "issuer", "discovery has no jwks_uri, so ID tokens cannot be verified; the provider is misconfigured or this is not an OpenID Provider")
		return fs
	}
	if f, ok := checkJWKS(ctx, client, timeout, doc); !ok {
		add(sevError, "issuer", "%s", f)
	}
	return fs
}

// probeTrustIssuer checks a trusted issuer's discovery and JWKS. Every
// problem is a warning: the broker contacts trusted issuers lazily, on
// their first token, so it starts without them.
func probeTrustIssuer(ctx context.Context, client *http.Client, timeout time.Duration, path, issuer string) []finding {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	warn := func(format string, args ...any) []finding {
		return []finding{{sev: sevWarning, path: path + ".issuer", msg: fmt.Sprintf(format, args...)}}
	}
	var doc discoveryDoc
	if err := fetchJSON(ctx, client, discoveryURL(issuer), timeout, &doc); err != nil {
		return warn("discovery failed: %v; tokens from this issuer will be refused with temporarily_unavailable until it answers", err)
	}
	if doc.Issuer != issuer {
		return warn("discovery says issuer %q but the rule says %q; set issuer to the tokens' exact iss", doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return warn("discovery has no jwks_uri, so this issuer's tokens cannot be verified")
	}
	if f, ok := checkJWKS(ctx, client, timeout, doc); !ok {
		return warn("%s", f)
	}
	return nil
}

// checkJWKS fetches doc's JWKS and reports whether it holds a key that can
// verify an ID token with one of the advertised algorithms; when not, the
// string says why.
func checkJWKS(ctx context.Context, client *http.Client, timeout time.Duration, doc discoveryDoc) (string, bool) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := fetchJSON(ctx, client, doc.JWKSURI, timeout, &set); err != nil {
		return fmt.Sprintf("JWKS failed: %v; ID tokens cannot be verified until it answers", err), false
	}
	if len(set.Keys) == 0 {
		return fmt.Sprintf("the JWKS at %s has no keys, so no ID token can be verified; the provider has no signing key yet (or jwks_uri points elsewhere)", safeURL(doc.JWKSURI)), false
	}
	algs := verifierAlgorithms(doc.Algorithms)
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) == nil { // Keys of unknown types are ignored, as verifiers do.
			keys = append(keys, k)
		}
	}
	for _, alg := range algs {
		for _, k := range keys {
			if keyFits(k, alg) {
				return "", true
			}
		}
	}
	return fmt.Sprintf("none of the %d keys at %s can verify %s (id_token_signing_alg_values_supported %q); the provider must publish a matching public signing key",
		len(set.Keys), safeURL(doc.JWKSURI), strings.Join(algs, " or "), doc.Algorithms), false
}

// verifierAlgorithms are the advertised algorithms Keyward's verifier
// (go-oidc) accepts; RS256 when none is advertised. OIDC Discovery §3
func verifierAlgorithms(advertised []string) []string {
	var algs []string
	for _, a := range advertised {
		if keyFitsAlg[a] != nil {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		return []string{"RS256"}
	}
	return algs
}

// keyFitsAlg tells, per algorithm go-oidc verifies, whether a public key
// can verify it.
var keyFitsAlg = map[string]func(key any) bool{
	"RS256": isRSA, "RS384": isRSA, "RS512": isRSA,
	"PS256": isRSA, "PS384": isRSA, "PS512": isRSA,
	"ES256": isCurve(elliptic.P256()), "ES384": isCurve(elliptic.P384()), "ES512": isCurve(elliptic.P521()),
	"EdDSA": func(key any) bool { _, ok := key.(ed25519.PublicKey); return ok },
}

func isRSA(key any) bool { _, ok := key.(*rsa.PublicKey); return ok }

func isCurve(c elliptic.Curve) func(any) bool {
	return func(key any) bool {
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == c
	}
}

// keyFits reports whether k is a public signing key for alg. RFC 7517 §4.2, §4.4
func keyFits(k jose.JSONWebKey, alg string) bool {
	fits := keyFitsAlg[alg]
	return fits != nil && k.IsPublic() && (k.Use == "" || k.Use == "sig") &&
		(k.Algorithm == "" || k.Algorithm == alg) && fits(k.Key)
}

// fetchJSON GETs rawURL with client and decodes its JSON body into v. Its
// error never holds the response body, nor the URL's query or user info.
func fetchJSON(ctx context.Context, client *http.Client, rawURL string, timeout time.Duration, v any) error {
	shown := safeURL(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: not a valid URL", shown)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // Its URL may hold a query.
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: no answer within %s", shown, timeout)
		}
		return fmt.Errorf("GET %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", shown, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody+1))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("GET %s: no complete answer within %s", shown, timeout)
	case err != nil:
		return fmt.Errorf("GET %s: read the response: %w", shown, err)
	case len(body) > maxProbeBody:
		return fmt.Errorf("GET %s: the response is larger than 1 MiB", shown)
	}
	if json.Unmarshal(body, v) != nil {
		return fmt.Errorf("GET %s: the response (%s) is not the expected JSON document", shown, resp.Header.Get("Content-Type"))
	}
	return nil
}

// safeURL is raw without user info and with its query replaced by "?…":
// fit to print.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an invalid URL)"
	}
	u.User = nil
	u.Fragment = ""
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = ""
		u.ForceQuery = false
		return u.String() + "?…"
	}
	return u.String()
}

// probeGitHub checks that a GitHub upstream's REST API answers (GitHub has
// no discovery or keys to fetch): GET of the API root, unauthenticated. A
// 401 is a GitHub Enterprise Server in private mode, which is fine.
func probeGitHub(ctx context.Context, client *http.Client, timeout time.Duration, t probeTarget, add func(sev severity, field, format string, args ...any)) {
	field := "githubURL"
	root := strings.TrimRight(t.githubAPI, "/") + "/"
	shown := safeURL(root)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, root, nil)
	if err != nil {
		add(sevError, field, "the GitHub API URL %s is not a valid URL; check githubURL and githubAPIURL", shown)
		return
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("User-Agent", "Keyward")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s", timeout)
		}
		add(sevError, field, "the GitHub API at %s is unreachable: %v; check githubURL (and githubAPIURL) and that this host can reach it", shown, err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		add(sevInfo, field, "the GitHub API at %s answers; GitHub has no discovery, so sign in once to check the OAuth App, its scopes and the allow rules", shown)
	case resp.StatusCode == http.StatusUnauthorized:
		add(sevInfo, field, "the GitHub API at %s answers 401 without a token (GitHub Enterprise Server in private mode); that is fine", shown)
	default:
		add(sevError, field, "the GitHub API at %s answers %s, not 200; is githubURL a GitHub (Enterprise Server) URL? Set githubAPIURL if its API lives elsewhere", shown, resp.Status)
	}
}
