package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Bounds of the GitHub REST API reads.
const (
	// githubMaxPages bounds every paginated list (orgs, teams, emails).
	githubMaxPages = 10
	// githubPerPage is the page size asked for (GitHub's maximum).
	githubPerPage = 100
	// githubMaxBody caps one response body.
	githubMaxBody = 1 << 20
	// githubAPIVersion is the REST API version Keyward is written against.
	githubAPIVersion = "2022-11-28"
)

// githubStatusError is a GitHub REST API answer other than 200. Message is
// GitHub's "message" field, cleaned and bounded; never the raw body.
type githubStatusError struct {
	path    string
	status  int
	message string
	limited bool // rate limit exhausted
}

func (e *githubStatusError) Error() string {
	msg := fmt.Sprintf("GET %s: %d %s", e.path, e.status, http.StatusText(e.status))
	if e.limited {
		msg += " (rate limit exhausted)"
	}
	if e.message != "" {
		msg += ": " + e.message
	}
	return msg
}

// forbidden reports whether err is a 403 or 404 that says the token may
// not read the endpoint (a scope or GitHub App permission missing), not a
// rate limit.
func forbidden(err error) bool {
	var se *githubStatusError
	return errors.As(err, &se) && !se.limited && (se.status == http.StatusForbidden || se.status == http.StatusNotFound)
}

// user reads GET /user into claims, with sub set to the numeric id.
func (g *GitHub) user(ctx context.Context, token string) (map[string]any, error) {
	const op = "federation: read github user"
	body, _, err := g.get(ctx, token, g.endpoint("/user"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, ErrGitHubAPI, err)
	}
	var u struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, fmt.Errorf("%s: %w: the answer is not a user (%s)", op, ErrGitHubAPI, clean(err.Error(), 100))
	}
	if err := json.Unmarshal(body, &claims); err != nil || claims == nil {
		return nil, fmt.Errorf("%s: %w: the answer is not a JSON object", op, ErrGitHubAPI)
	}
	if u.ID <= 0 || u.Login == "" {
		return nil, fmt.Errorf("%s: %w: the answer has no id or login", op, ErrGitHubAPI)
	}
	claims["sub"] = subjectOf(u.ID)
	return claims, nil
}

// primaryEmail is the person's primary email when GitHub has verified it,
// else "". A token that may not read emails (403/404) has none.
func (g *GitHub) primaryEmail(ctx context.Context, token string) (string, error) {
	type email struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	emails, _, err := getAll[email](ctx, g, token, "/user/emails")
	if forbidden(err) {
		g.logger.WarnContext(ctx, "github: the token may not read the person's emails (grant user:email, or the GitHub App's email addresses permission); signing in without an email", "err", err)
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("federation: read github emails: %w: %w", ErrGitHubAPI, err)
	}
	for _, e := range emails {
		if e.Primary && e.Verified && strings.Contains(e.Email, "@") {
			return e.Email, nil
		}
	}
	return "", nil
}

// groups are the person's organisation logins and "org:team-slug" values,
// lower case, deduplicated; nil when the token may read neither list.
func (g *GitHub) groups(ctx context.Context, token string) ([]string, error) {
	type org struct {
		Login string `json:"login"`
	}
	type team struct {
		Slug         string `json:"slug"`
		Organization org    `json:"organization"`
	}
	var out []string
	add := func(s string) {
		if s = strings.ToLower(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	orgs, more, err := getAll[org](ctx, g, token, "/user/orgs")
	switch {
	case forbidden(err):
		g.logger.WarnContext(ctx, "github: the token may not list the person's organisations; no organisation groups", "err", err)
	case err != nil:
		return nil, fmt.Errorf("federation: read github organisations: %w: %w", ErrGitHubAPI, err)
	default:
		out = []string{}
		for _, o := range orgs {
			add(o.Login)
		}
		g.truncated(ctx, "/user/orgs", more, len(orgs))
	}
	teams, more, err := getAll[team](ctx, g, token, "/user/teams")
	switch {
	case forbidden(err):
		g.logger.WarnContext(ctx, "github: the token may not list the person's teams; no team groups", "err", err)
	case err != nil:
		return nil, fmt.Errorf("federation: read github teams: %w: %w", ErrGitHubAPI, err)
	default:
		if out == nil {
			out = []string{}
		}
		for _, t := range teams {
			if t.Slug != "" && t.Organization.Login != "" {
				add(t.Organization.Login + ":" + t.Slug)
			}
		}
		g.truncated(ctx, "/user/teams", more, len(teams))
	}
	return out, nil
}

// truncated logs a list cut off at the page bound.
func (g *GitHub) truncated(ctx context.Context, path string, more bool, n int) {
	if more {
		g.logger.WarnContext(ctx, "github: list longer than the page bound; the rest is left out of the groups",
			"path", path, "read", n, "max_pages", githubMaxPages)
	}
}

// getAll reads a paginated list at path, following Link rel="next" for at
// most githubMaxPages pages; more reports that pages were left.
func getAll[T any](ctx context.Context, g *GitHub, token, path string) (items []T, more bool, err error) {
	next := g.endpoint(path) + fmt.Sprintf("?per_page=%d", githubPerPage)
	for page := 1; next != ""; page++ {
		if page > githubMaxPages {
			return items, true, nil
		}
		body, link, err := g.get(ctx, token, next)
		if err != nil {
			return nil, false, err
		}
		var list []T
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, false, fmt.Errorf("GET %s: page %d is not a JSON list", path, page)
		}
		items = append(items, list...)
		if next, err = g.nextPage(path, link); err != nil {
			return nil, false, err
		}
	}
	return items, false, nil
}

// endpoint is the absolute URL of an API path.
func (g *GitHub) endpoint(path string) string { return g.cfg.GitHubAPIURL + path }

// nextPage is the rel="next" URL of a Link header ("" when none). It must
// stay on the API's origin and under its path, so the access token is
// never sent anywhere else.
func (g *GitHub) nextPage(path, link string) (string, error) {
	next := linkNext(link)
	if next == "" {
		return "", nil
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != g.api.Scheme || u.Host != g.api.Host || u.User != nil ||
		!strings.HasPrefix(u.Path, strings.TrimRight(g.api.Path, "/")+"/") {
		return "", fmt.Errorf("GET %s: the next page's link leaves %s; not followed", path, g.cfg.GitHubAPIURL)
	}
	return u.String(), nil
}

// linkNext finds the rel="next" target of an RFC 8288 Link header.
func linkNext(h string) string {
	for part := range strings.SplitSeq(h, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		target = strings.TrimSpace(target)
		if !ok || len(target) < 2 || target[0] != '<' || target[len(target)-1] != '>' {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "rel") && slices.Contains(strings.Fields(strings.ToLower(strings.Trim(v, `" `))), "next") {
				return target[1 : len(target)-1]
			}
		}
	}
	return ""
}

// get GETs rawURL with the access token and returns the body (at most
// githubMaxBody) and the Link header. Errors never hold the token or the
// body; a non-200 answer is a *githubStatusError.
func (g *GitHub) get(ctx context.Context, token, rawURL string) ([]byte, string, error) {
	path := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		path = strings.TrimPrefix(u.Path, strings.TrimRight(g.api.Path, "/"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", githubAPIVersion)
	req.Header.Set("User-Agent", "Keyward")
	resp, err := g.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("GET %s: %w", path, redact(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, githubMaxBody+1))
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: read the answer: %w", path, redact(err))
	}
	if resp.StatusCode != http.StatusOK {
		var msg struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &msg)
		limited := resp.StatusCode == http.StatusTooManyRequests ||
			(resp.StatusCode == http.StatusForbidden &&
				(resp.Header.Get("X-RateLimit-Remaining") == "0" || resp.Header.Get("Retry-After") != ""))
		return nil, "", &githubStatusError{path: path, status: resp.StatusCode, message: clean(msg.Message, 100), limited: limited}
	}
	if len(body) > githubMaxBody {
		return nil, "", fmt.Errorf("GET %s: the answer is larger than 1 MiB", path)
	}
	return body, resp.Header.Get("Link"), nil
}
