package harness

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// NewTransport is a keep-alive transport for conc concurrent clients per host.
func NewTransport(conc int) *http.Transport {
	return &http.Transport{
		MaxIdleConns:        4 * conc,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
}

// Get fetches u and drains the body; any status but 200 is an error.
func Get(ctx context.Context, c *http.Client, u string) error {
	return GetHeader(ctx, c, u, nil)
}

// GetHeader is Get with the request headers hdr (shared, not modified).
func GetHeader(ctx context.Context, c *http.Client, u string, hdr http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if hdr != nil {
		req.Header = hdr
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return nil
}

// Steps are the durations of the four legs of one sign-in.
type Steps struct {
	Authorize time.Duration // broker GET /authorize → redirect to the upstream
	Upstream  time.Duration // upstream GET /authorize (auto login) → redirect to /callback
	Callback  time.Duration // broker GET /callback (includes its upstream code exchange) → redirect with code
	Token     time.Duration // broker POST /token, authorization_code grant
}

// SignInClient runs whole sign-ins against env's broker like a browser with a
// fresh cookie jar plus an x/oauth2 relying party.
type SignInClient struct {
	oauth     oauth2.Config
	transport http.RoundTripper
	rp        *http.Client // token endpoint client (no jar)
}

// NewSignInClient uses transport for every request.
func NewSignInClient(brokerURL string, transport http.RoundTripper) *SignInClient {
	return &SignInClient{
		oauth: oauth2.Config{
			ClientID: ClientID, ClientSecret: ClientSecret, RedirectURL: ClientRedirect,
			Endpoint: oauth2.Endpoint{AuthURL: brokerURL + "/authorize", TokenURL: brokerURL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
			Scopes:   []string{"openid", "email", "profile", "groups", "offline_access"},
		},
		transport: transport,
		rp:        &http.Client{Transport: transport, Timeout: 30 * time.Second},
	}
}

// SignIn runs authorize → upstream → callback → token and returns the tokens.
// steps, when non-nil, receives the duration of each leg.
func (c *SignInClient) SignIn(ctx context.Context, steps *Steps) (*oauth2.Token, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	browser := &http.Client{
		Transport: c.transport,
		Jar:       jar,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // each leg is followed and timed here
		},
	}
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	var s Steps
	t := time.Now()
	lap := func(d *time.Duration) {
		now := time.Now()
		*d, t = now.Sub(t), now
	}
	loc, err := redirectOf(ctx, browser, c.oauth.AuthCodeURL(state, oauth2.SetAuthURLParam("nonce", nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	lap(&s.Authorize)
	if loc, err = redirectOf(ctx, browser, loc); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	lap(&s.Upstream)
	if loc, err = redirectOf(ctx, browser, loc); err != nil {
		return nil, fmt.Errorf("callback: %w", err)
	}
	lap(&s.Callback)
	u, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if q.Get("error") != "" || q.Get("code") == "" || q.Get("state") != state {
		return nil, fmt.Errorf("callback: redirect %s.%s: error=%q, state ok=%v", u.Host, u.Path, q.Get("error"), q.Get("state") == state)
	}
	tok, err := c.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.rp), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	lap(&s.Token)
	if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		return nil, errors.New("token: no refresh_token or id_token")
	}
	if steps != nil {
		*steps = s
	}
	return tok, nil
}

// redirectOf GETs u and returns the Location of its 3xx response.
func redirectOf(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return "", fmt.Errorf("status %d, want a redirect: %.200s", resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", err
	}
	return loc.String(), nil
}

// Refresher redeems one refresh-token chain: each call presents the current
// refresh token and keeps the new one.
type Refresher struct {
	tokenURL string
	client   *http.Client
	token    string
}

// NewRefresher starts a chain at refreshToken.
func NewRefresher(brokerURL string, transport http.RoundTripper, refreshToken string) *Refresher {
	return &Refresher{tokenURL: brokerURL + "/token", client: &http.Client{Transport: transport, Timeout: 30 * time.Second}, token: refreshToken}
}

// Refresh runs one refresh_token grant (RFC 6749 §6).
func (r *Refresher) Refresh(ctx context.Context) error {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(ClientID), url.QueryEscape(ClientSecret))
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("refresh: status %d: %.200s", resp.StatusCode, body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return fmt.Errorf("refresh: decode: %w", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		return errors.New("refresh: response lacks access_token or refresh_token")
	}
	r.token = tok.RefreshToken
	return nil
}

// Token is the chain's current refresh token.
func (r *Refresher) Token() string { return r.token }

// Reset restarts the chain at refreshToken.
func (r *Refresher) Reset(refreshToken string) { r.token = refreshToken }
