package verify

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func handlerRules() Rules {
	return Rules{
		{Host: "api.example.com", Path: "/public/", Allow: AllowAnonymous},
		{Host: "api.example.com", Path: "/orders/", Methods: []string{"POST"}, Audience: testAudience, Scopes: Set{AllOf: []string{"orders:write"}}},
		{Host: "api.example.com", Path: "/orders/", Audience: testAudience, Scopes: Set{AnyOf: []string{"orders:read", "orders:write"}}},
	}
}

var identity = http.Header{
	"X-Auth-Request-User":               {"corp|1234"},
	"X-Auth-Request-Preferred-Username": {"ada"},
	"X-Auth-Request-Email":              {"ada@example.com"},
	"X-Auth-Request-Groups":             {"staff,shop-admins"},
	"X-Auth-Request-Subject":            {"corp|1234"},
}

func challenge(code, desc string) http.Header {
	return http.Header{"Www-Authenticate": {`Bearer realm="keyward", error="` + code + `", error_description="` + desc + `"`}}
}

func TestHandler(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	good := "Bearer " + mint(t, e.rsa, nil, e.claims)
	expired := "Bearer " + mint(t, e.rsa, nil, with(e.claims, "exp", e.clock.Now().Add(-5*time.Minute).Unix()))

	nginx := func(uri, method string) http.Header {
		return http.Header{"X-Original-Uri": {uri}, "X-Original-Method": {method}, "X-Forwarded-Host": {"api.example.com"}}
	}
	traefik := func(uri, method string) http.Header {
		return http.Header{"X-Forwarded-Uri": {uri}, "X-Forwarded-Method": {method}, "X-Forwarded-Host": {"api.example.com"}, "X-Forwarded-Proto": {"https"}}
	}
	fwd := HandlerOptions{Headers: HeadersForwarded}
	tests := []struct {
		name       string
		opts       HandlerOptions
		method     string
		target     string
		host       string
		headers    http.Header
		auth       string
		wantStatus int
		wantHeader http.Header
	}{
		{"nginx valid", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1?x=1", "GET"), good, 200, identity},
		{"nginx scheme case", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "GET"), "bEaReR " + good[7:], 200, identity},
		{"nginx pass token", HandlerOptions{PassAccessToken: true}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "GET"), good, 200,
			merge(identity, http.Header{"X-Auth-Request-Access-Token": {good[7:]}})},
		{"nginx insufficient scope", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "POST"), good, 403,
			challenge("insufficient_scope", "token lacks a required scope")},
		{"nginx no token", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "GET"), "", 401,
			http.Header{"Www-Authenticate": {`Bearer realm="keyward"`}}},
		{"nginx basic auth is no token", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "GET"), "Basic YTpi", 401,
			http.Header{"Www-Authenticate": {`Bearer realm="keyward"`}}},
		{"nginx empty bearer", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "GET"), "Bearer ", 401,
			challenge("invalid_token", "malformed token")},
		{"nginx expired", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/orders/1", "GET"), expired, 401,
			challenge("invalid_token", "token expired")},
		{"nginx anonymous", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/public/a.css", "GET"), "", 200, http.Header{}},
		{"nginx anonymous ignores token", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/public/a.css", "GET"), good, 200, http.Header{}},
		{"nginx no rule", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/admin", "GET"), good, 403,
			challenge("insufficient_scope", "no rule allows this request")},
		{"nginx traversal", HandlerOptions{}, "GET", "/oauth2/auth", "verifier", nginx("/public/../admin", "GET"), "", 403,
			challenge("invalid_request", "request path has a dot segment (. or ..)")},
		{"nginx no URI", HandlerOptions{}, "GET", "/oauth2/auth", "api.example.com", http.Header{}, good, 403,
			challenge("invalid_request", "the gateway sent no X-Original-URI header; nginx needs proxy_set_header X-Original-URI $request_uri")},
		{"traefik no URI", fwd, "GET", "/oauth2/auth", "api.example.com", http.Header{"X-Forwarded-Host": {"api.example.com"}}, good, 403,
			challenge("invalid_request", "the gateway sent no X-Forwarded-Uri header")},
		{"nginx method from subrequest", HandlerOptions{}, "POST", "/oauth2/auth", "api.example.com",
			http.Header{"X-Original-Uri": {"/orders/1"}}, good, 403, challenge("insufficient_scope", "token lacks a required scope")},
		{"traefik valid", fwd, "GET", "/oauth2/auth", "verifier", traefik("/orders/1", "GET"), good, 200, identity},
		{"traefik scope", fwd, "GET", "/oauth2/auth", "verifier", traefik("/orders/1", "POST"), good, 403,
			challenge("insufficient_scope", "token lacks a required scope")},
		{"traefik wrong host", fwd, "GET", "/oauth2/auth", "verifier",
			http.Header{"X-Forwarded-Uri": {"/orders/1"}, "X-Forwarded-Host": {"evil.example.com"}}, good, 403,
			challenge("insufficient_scope", "no rule allows this request")},
		// A client of Traefik or Caddy sends nginx's headers to be judged
		// as /public/: the forwarded family ignores them.
		{"traefik ignores X-Original", fwd, "GET", "/oauth2/auth", "verifier",
			merge(traefik("/orders/1", "POST"), nginx("/public/x", "GET")), "", 401, http.Header{"Www-Authenticate": {`Bearer realm="keyward"`}}},
		{"traefik ignores X-Original scope", fwd, "GET", "/oauth2/auth", "verifier",
			merge(traefik("/orders/1", "POST"), nginx("/orders/1", "GET")), good, 403, challenge("insufficient_scope", "token lacks a required scope")},
		// And nginx ignores the X-Forwarded family.
		{"nginx ignores X-Forwarded", HandlerOptions{}, "GET", "/oauth2/auth", "verifier",
			merge(nginx("/orders/1", "POST"), http.Header{"X-Forwarded-Uri": {"/public/x"}, "X-Forwarded-Method": {"GET"}}), good, 403,
			challenge("insufficient_scope", "token lacks a required scope")},
		{"nginx no X-Original", HandlerOptions{Headers: HeadersNginx}, "GET", "/oauth2/auth", "verifier", traefik("/orders/1", "GET"), good, 403,
			challenge("invalid_request", "the gateway sent no X-Original-URI header; nginx needs proxy_set_header X-Original-URI $request_uri")},
		{"envoy family has no /oauth2/auth", HandlerOptions{Headers: HeadersEnvoy, EnvoyPrefix: "/ext_authz"}, "GET", "/oauth2/auth", "verifier",
			nginx("/orders/1", "GET"), good, 404, http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"}}},
		{"envoy family ignores X-Forwarded-Host", HandlerOptions{Headers: HeadersEnvoy, EnvoyPrefix: "/ext_authz"}, "GET", "/ext_authz/orders/1",
			"evil.example.com", http.Header{"X-Forwarded-Host": {"api.example.com"}}, good, 403, challenge("insufficient_scope", "no rule allows this request")},
		{"envoy valid", HandlerOptions{EnvoyPrefix: "/ext_authz/"}, "GET", "/ext_authz/orders/1?q=1", "api.example.com:443", nil, good, 200, identity},
		{"envoy method", HandlerOptions{EnvoyPrefix: "/ext_authz"}, "POST", "/ext_authz/orders/1", "api.example.com", nil, good, 403,
			challenge("insufficient_scope", "token lacks a required scope")},
		{"envoy anonymous", HandlerOptions{EnvoyPrefix: "/ext_authz"}, "DELETE", "/ext_authz/public/x", "api.example.com", nil, "", 200, http.Header{}},
		{"envoy off", HandlerOptions{}, "GET", "/ext_authz/orders/1", "api.example.com", nil, good, 404,
			http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"}}},
		{"healthz", HandlerOptions{}, "GET", "/healthz", "verifier", nil, "", 200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(v, handlerRules(), tt.opts)
			req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.target, nil)
			req.Host = tt.host
			for k, vs := range tt.headers {
				req.Header[k] = vs
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantHeader, rec.Header()); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if tt.target != "/healthz" && tt.wantStatus != 404 && rec.Body.Len() != 0 {
				t.Errorf("body = %q, want empty", rec.Body)
			}
		})
	}
}

func TestHandlerUnavailable(t *testing.T) {
	e := newEnv(t)
	e.ks.setStatus(http.StatusInternalServerError)
	v := newVerifier(t, e.ks, e.clock, nil)
	h := NewHandler(v, handlerRules(), HandlerOptions{})
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/oauth2/auth", nil)
	req.Header.Set("X-Original-Uri", "/orders/1")
	req.Header.Set("X-Forwarded-Host", "api.example.com")
	req.Header.Set("Authorization", "Bearer "+mint(t, e.rsa, nil, e.claims))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || len(rec.Header()) != 0 {
		t.Errorf("ServeHTTP() = %d %v, want 503 without headers", rec.Code, rec.Header())
	}
}

func TestMiddleware(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	good := "Bearer " + mint(t, e.rsa, nil, e.claims)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFromContext(r.Context())
		if ok {
			w.Header().Set("X-User", c.User())
		}
		w.WriteHeader(http.StatusTeapot)
	})
	tests := []struct {
		name       string
		rules      Rules
		method     string
		path       string
		auth       string
		wantStatus int
		wantUser   string
	}{
		{"nil rules valid", nil, "GET", "/anything", good, http.StatusTeapot, "corp|1234"},
		{"nil rules no token", nil, "GET", "/anything", "", http.StatusUnauthorized, ""},
		{"nil rules bad token", nil, "GET", "/anything", "Bearer x.y.z", http.StatusUnauthorized, ""},
		{"rules valid", handlerRules(), "GET", "/orders/1", good, http.StatusTeapot, "corp|1234"},
		{"rules scope", handlerRules(), "POST", "/orders/1", good, http.StatusForbidden, ""},
		{"rules anonymous", handlerRules(), "GET", "/public/x", "", http.StatusTeapot, ""},
		{"rules no match", handlerRules(), "GET", "/admin", good, http.StatusForbidden, ""},
		{"rules escaped traversal", handlerRules(), "GET", "/public/%2e%2e/admin", "", http.StatusForbidden, ""},
		{"anonymous", ambiguityRules, "GET", "/public/x", "", http.StatusTeapot, ""},
		{"encoded slash out of /admin", ambiguityRules, "GET", "/admin/..%2Fpublic/x", "", http.StatusForbidden, ""},
		{"semicolon", ambiguityRules, "GET", "/public/..;/admin", "", http.StatusForbidden, ""},
		{"encoded backslash", ambiguityRules, "GET", "/public/..%5Cadmin", "", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), tt.method, "http://api.example.com"+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			v.Middleware(tt.rules)(next).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus || rec.Header().Get("X-User") != tt.wantUser {
				t.Errorf("ServeHTTP() = %d, user %q; want %d, %q", rec.Code, rec.Header().Get("X-User"), tt.wantStatus, tt.wantUser)
			}
		})
	}
	if _, ok := ClaimsFromContext(t.Context()); ok {
		t.Error("ClaimsFromContext(empty) = ok, want false")
	}

	// Through a real server, the request target as a client wrote it.
	srv := httptest.NewServer(v.Middleware(ambiguityRules)(next))
	t.Cleanup(srv.Close)
	for target, want := range map[string]int{
		"/public/x": http.StatusTeapot, "/admin/..%2Fpublic/x": http.StatusForbidden, "/public/..;/admin": http.StatusForbidden,
		"/public/..%5cadmin": http.StatusForbidden, "/public/%2e%2e/admin": http.StatusForbidden, "/public/..\\admin": http.StatusForbidden,
	} {
		resp := rawRequest(t, srv.Listener.Addr().String(), "GET "+target+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != want {
			t.Errorf("GET %s through the middleware = %d, want %d", target, resp.StatusCode, want)
		}
	}
}

func merge(hs ...http.Header) http.Header {
	out := http.Header{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}

// TestHandlerAmbiguousPathsPerGateway sends, over real HTTP and byte for
// byte, the check request each gateway makes for a client's request (nginx
// auth_request, Caddy forward_auth, Traefik forwardAuth with the headers
// they set; Envoy ext_authz, whose check request is the client's request
// under the prefix), for paths that once were cleaned onto the anonymous
// /public/ rule. Each is refused with 403 invalid_request; the plain
// /public/ path still passes, and a token does not help.
func TestHandlerAmbiguousPathsPerGateway(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	token := mint(t, e.rsa, nil, e.claims) // signed in, but not in admins
	check := func(uri string) map[string]string {
		return map[string]string{
			"nginx": "GET /oauth2/auth HTTP/1.1\r\nHost: 127.0.0.1:4180\r\nX-Original-URI: " + uri +
				"\r\nX-Original-Method: GET\r\nX-Forwarded-Host: api.example.com\r\nConnection: close\r\n",
			"caddy": "GET /oauth2/auth HTTP/1.1\r\nHost: api.example.com\r\nX-Forwarded-For: 127.0.0.1\r\n" +
				"X-Forwarded-Host: api.example.com\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Uri: " + uri +
				"\r\nConnection: close\r\n",
			"traefik": "GET /oauth2/auth HTTP/1.1\r\nHost: 127.0.0.1:4180\r\nX-Forwarded-For: 192.0.2.7\r\n" +
				"X-Forwarded-Host: api.example.com\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Proto: https\r\n" +
				"X-Forwarded-Server: traefik\r\nX-Forwarded-Uri: " + uri + "\r\nX-Real-Ip: 192.0.2.7\r\nConnection: close\r\n",
			"envoy": "GET /ext_authz" + uri + " HTTP/1.1\r\nHost: api.example.com\r\nX-Envoy-Expected-Rq-Timeout-Ms: 250\r\n" +
				"X-Forwarded-Proto: https\r\nContent-Length: 0\r\nConnection: close\r\n",
		}
	}
	families := map[string]HandlerOptions{
		"nginx": {}, "caddy": {Headers: HeadersForwarded}, "traefik": {Headers: HeadersForwarded},
		"envoy": {Headers: HeadersEnvoy, EnvoyPrefix: "/ext_authz"},
	}
	servers := map[string]string{}
	for name, opts := range families {
		srv := httptest.NewServer(NewHandler(v, ambiguityRules, opts))
		t.Cleanup(srv.Close)
		servers[name] = srv.Listener.Addr().String()
	}
	tests := []struct {
		uri        string
		wantStatus int
		wantDesc   string
	}{
		{"/public/x", http.StatusOK, ""},
		{"/admin/..%2Fpublic/x", http.StatusForbidden, "request path has a dot segment (. or ..)"},
		{"/public/..%2Fadmin/x", http.StatusForbidden, "request path has a dot segment (. or ..)"},
		{"/public/%2e%2e/admin", http.StatusForbidden, "request path has a dot segment (. or ..)"},
		{"/public/..;/admin", http.StatusForbidden, "request path has a semicolon"},
		{"/public/..%5Cadmin", http.StatusForbidden, "request path has a backslash"},
		{"/public%2Fadmin", http.StatusForbidden, "request path has an encoded slash (%2F) and the matching rule does not set allowEncodedSlash"},
		{"/public//admin", http.StatusForbidden, "request path has an empty segment (//)"},
	}
	for name, addr := range servers {
		for _, tt := range tests {
			for _, auth := range []string{"", "Authorization: Bearer " + token + "\r\n"} {
				t.Run(name+tt.uri, func(t *testing.T) {
					resp := rawRequest(t, addr, check(tt.uri)[name]+auth+"\r\n")
					want := http.Header{}
					if tt.wantDesc != "" {
						want = challenge(CodeInvalidRequest, tt.wantDesc)
					}
					got := http.Header{}
					if v, ok := resp.Header["Www-Authenticate"]; ok {
						got["Www-Authenticate"] = v
					}
					if resp.StatusCode != tt.wantStatus || !cmp.Equal(want, got) {
						t.Errorf("%s check of %q = %d %v, want %d %v", name, tt.uri, resp.StatusCode, got, tt.wantStatus, want)
					}
				})
			}
		}
	}
}

// rawRequest writes req, a whole HTTP/1.1 request, to addr as it is (no
// client normalises its target) and reads the answer.
func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	_ = resp.Body.Close()
	return resp
}

// TestHandlerIdentityHeaders: X-Auth-Request-User is a stable claim (sub
// unless Config.UserClaim says otherwise), never the changeable
// preferred_username, which travels as -Preferred-Username; -Email only
// for a verified address; group names that an app splitting on ',' would
// misread are escaped.
func TestHandlerIdentityHeaders(t *testing.T) {
	e := newEnv(t)
	check := func(t *testing.T, userClaim string, c map[string]any) *httptest.ResponseRecorder {
		t.Helper()
		v := newVerifier(t, e.ks, e.clock, func(cfg *Config) { cfg.UserClaim = userClaim })
		req := httptest.NewRequestWithContext(t.Context(), "GET", "/oauth2/auth", nil)
		req.Header.Set("X-Original-Uri", "/orders/1")
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		req.Header.Set("Authorization", "Bearer "+mint(t, e.rsa, nil, c))
		rec := httptest.NewRecorder()
		NewHandler(v, handlerRules(), HandlerOptions{}).ServeHTTP(rec, req)
		return rec
	}
	tests := []struct {
		name      string
		userClaim string
		claims    map[string]any
		want      http.Header // identity headers; nil: 403 lacking the user claim
	}{
		{"default: sub, not preferred_username", "", e.claims, identity},
		{"unverified email is not passed", "", with(e.claims, "email_verified", false),
			withoutHeader(identity, "X-Auth-Request-Email")},
		{"email without email_verified is not passed", "", with(e.claims, "email_verified", nil),
			withoutHeader(identity, "X-Auth-Request-Email")},
		{"email_verified as a string is not true", "", with(e.claims, "email_verified", "true"),
			withoutHeader(identity, "X-Auth-Request-Email")},
		{"no preferred_username", "", with(e.claims, "preferred_username", nil),
			withoutHeader(identity, "X-Auth-Request-Preferred-Username")},
		{"group with a comma", "", with(e.claims, "groups", []string{"staff,admins", "dev"}),
			merge(identity, http.Header{"X-Auth-Request-Groups": {"staff%2Cadmins,dev"}})},
		{"group with a control character", "", with(e.claims, "groups", []string{"a\x00b", "c\nd", "e\x7f"}),
			merge(identity, http.Header{"X-Auth-Request-Groups": {"a%00b,c%0Ad,e%7F"}})},
		{"group with a percent", "", with(e.claims, "groups", []string{"100%", "staff%2Cadmins"}),
			merge(identity, http.Header{"X-Auth-Request-Groups": {"100%25,staff%252Cadmins"}})},
		{"group with spaces", "", with(e.claims, "groups", []string{" admins", "Domain Users", "x "}),
			merge(identity, http.Header{"X-Auth-Request-Groups": {"%20admins,Domain Users,x%20"}})},
		{"user claim email, verified", "email", e.claims,
			merge(identity, http.Header{"X-Auth-Request-User": {"ada@example.com"}})},
		{"user claim email, unverified", "email", with(e.claims, "email_verified", false), nil},
		{"user claim custom", "oid", with(e.claims, "oid", "8f1c-42"),
			merge(identity, http.Header{"X-Auth-Request-User": {"8f1c-42"}})},
		{"user claim custom, absent", "oid", e.claims, nil},
		{"user claim custom, not a string", "oid", with(e.claims, "oid", 42), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := check(t, tt.userClaim, tt.claims)
			if tt.want == nil {
				if rec.Code != http.StatusForbidden || rec.Header().Get("X-Auth-Request-User") != "" {
					t.Fatalf("status = %d %v, want 403 without identity headers", rec.Code, rec.Header())
				}
				if diff := cmp.Diff(challenge(CodeInsufficientScope, "token lacks the configured user claim"), rec.Header()); diff != "" {
					t.Errorf("headers (-want +got):\n%s", diff)
				}
				return
			}
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", rec.Code)
			}
			if diff := cmp.Diff(tt.want, rec.Header()); diff != "" {
				t.Errorf("identity headers (-want +got):\n%s", diff)
			}
		})
	}
}

func withoutHeader(h http.Header, name string) http.Header {
	out := merge(h)
	delete(out, name)
	return out
}

// TestHandlerRefusesMethodOverride (issue 11 review): a backend that honours
// X-HTTP-Method-Override (or _method) runs DELETE for a POST that the rules
// judged as POST. Where some rule depends on the method, the check refuses
// a request that carries an override; where none does, it is ignored.
func TestHandlerRefusesMethodOverride(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	withMethods := Rules{
		{Path: "/items", Methods: []string{"DELETE"}, Groups: Set{AnyOf: []string{"admins"}}},
		{Path: "/", Allow: AllowAnonymous},
	}
	without := Rules{{Path: "/", Allow: AllowAnonymous}}
	check := func(rules Rules, uri, extra string) int {
		srv := httptest.NewServer(NewHandler(v, rules, HandlerOptions{}))
		defer srv.Close()
		return rawRequest(t, srv.Listener.Addr().String(), "GET /oauth2/auth HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Original-URI: "+uri+
			"\r\nX-Original-Method: POST\r\nX-Forwarded-Host: api.example.com\r\n"+extra+"Connection: close\r\n\r\n").StatusCode
	}
	for _, tt := range []struct{ uri, extra string }{
		{"/items/1", "X-HTTP-Method-Override: DELETE\r\n"},
		{"/items/1", "x-http-method: DELETE\r\n"},
		{"/items/1", "X-Method-Override: DELETE\r\n"},
		{"/items/1?_method=DELETE", ""},
		{"/items/1?a=1&%5Fmethod=DELETE", ""},
	} {
		if got := check(withMethods, tt.uri, tt.extra); got != http.StatusForbidden {
			t.Errorf("POST %s with %q = %d, want 403 invalid_request (method override)", tt.uri, tt.extra, got)
		}
		if got := check(without, tt.uri, tt.extra); got != http.StatusOK {
			t.Errorf("POST %s with %q and no rule on methods = %d, want 200", tt.uri, tt.extra, got)
		}
	}
	if got := check(withMethods, "/items/1?method=x", ""); got != http.StatusOK {
		t.Errorf("POST /items/1 without an override = %d, want 200", got)
	}
}

// TestHandlerDecisions: OnDecision hears one decision per check, with the
// rule, the outcome and the reason, and never the token or the query.
func TestHandlerDecisions(t *testing.T) {
	e := newEnv(t)
	v := newVerifier(t, e.ks, e.clock, nil)
	token := mint(t, e.rsa, nil, e.claims)
	var got []Decision
	h := NewHandler(v, handlerRules(), HandlerOptions{OnDecision: func(_ context.Context, d Decision) { got = append(got, d) }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, c := range []struct{ uri, method, auth string }{
		{"/orders/1?secret=x", "GET", "Bearer " + token},
		{"/orders/1", "POST", "Bearer " + token},
		{"/public/a.css", "GET", ""},
		{"/admin", "GET", "Bearer " + token},
		{"/orders/1", "GET", ""},
		{"", "GET", "Bearer " + token},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/oauth2/auth", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.uri != "" {
			req.Header.Set("X-Original-Uri", c.uri)
		}
		req.Header.Set("X-Original-Method", c.method)
		req.Header.Set("X-Forwarded-Host", "api.example.com")
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []Decision{
		{Method: "GET", Host: "api.example.com", Path: "/orders/1", Rule: 2, Status: 200},
		{Method: "POST", Host: "api.example.com", Path: "/orders/1", Rule: 1, Status: 403, Reason: "token lacks a required scope"},
		{Method: "GET", Host: "api.example.com", Path: "/public/a.css", Rule: 0, Status: 200},
		{Method: "GET", Host: "api.example.com", Path: "/admin", Rule: -1, Status: 403, Reason: "no rule allows this request"},
		{Method: "GET", Host: "api.example.com", Path: "/orders/1", Rule: 2, Status: 401, Reason: "no bearer token"},
		{Method: "GET", Host: "api.example.com", Path: "", Rule: -1, Status: 403,
			Reason: "the gateway sent no X-Original-URI header; nginx needs proxy_set_header X-Original-URI $request_uri"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	for i, wantOutcome := range []string{"allow", "deny", "allow", "deny", "unauthenticated", "deny"} {
		if i < len(got) && got[i].Outcome() != wantOutcome {
			t.Errorf("decision %d outcome = %q, want %q", i, got[i].Outcome(), wantOutcome)
		}
	}
}
