package brokertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// SignIn signs a person in as the client oc, in a fresh browser, through an
// upstream that approves at once (Options.AutoLogin): authorization code
// with PKCE S256 and a nonce, then the code exchange. The browser stops at
// the redirect to oc.RedirectURL, so nothing needs to listen there.
func (e *Env) SignIn(ctx context.Context, oc oauth2.Config) (*oauth2.Token, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	return e.SignInWith(ctx, jar, oc)
}

// SignInWith is SignIn in the browser whose cookies jar keeps: a second
// sign-in in it is answered by single sign-on.
func (e *Env) SignInWith(ctx context.Context, jar http.CookieJar, oc oauth2.Config) (*oauth2.Token, error) {
	redirect, err := url.Parse(oc.RedirectURL)
	if err != nil {
		return nil, fmt.Errorf("redirect URL: %w", err)
	}
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == redirect.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := oauth2.GenerateVerifier()
	u := oc.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-0123456789"))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		return nil, fmt.Errorf("sign-in ended with %d Location %q, want a code; body: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tok, err := oc.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	if tok == nil {
		return nil, errors.New("exchange returned no token")
	}
	return tok, nil
}
