package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/test/fakeidp"
)

// probeIdP starts a fake IdP whose issuer is the listener's URL + path.
// editDiscovery, when set, rewrites its discovery document; jwks, when
// set, replaces its JWKS.
func probeIdP(t *testing.T, path string, editDiscovery func(doc map[string]any), jwks any) *fakeidp.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	idp, err := fakeidp.New(fakeidp.Config{Issuer: "http://" + ts.Listener.Addr().String() + path})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == path+"/.well-known/openid-configuration" && editDiscovery != nil:
			rec := httptest.NewRecorder()
			idp.Handler().ServeHTTP(rec, r)
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Errorf("fake IdP discovery: %v", err)
			}
			editDiscovery(doc)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(doc)
		case r.URL.Path == path+"/keys" && jwks != nil:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(jwks)
		default:
			idp.Handler().ServeHTTP(w, r)
		}
	})
	ts.Start()
	t.Cleanup(ts.Close)
	return idp
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func probeClient() *http.Client { return &http.Client{Transport: upstreamTransport()} }

func TestProbeUpstream(t *testing.T) {
	type want struct {
		sevPath  string   // "error upstreams[0].issuer"
		contains []string // in the message
	}
	callback := want{"info upstreams[0]", []string{"https://sso.example.com/callback", `"keyward"`}}
	tests := []struct {
		name    string
		timeout time.Duration // Default: probeTimeout.
		setup   func(t *testing.T) probeTarget
		want    []want
	}{{
		name:  "good upstream",
		setup: func(t *testing.T) probeTarget { return target(probeIdP(t, "", nil, nil).URL()) },
		want:  []want{callback},
	}, {
		name:  "unreachable",
		setup: func(t *testing.T) probeTarget { return target(closedURL(t)) },
		want:  []want{{"error upstreams[0].issuer", []string{"discovery failed: GET http://127.0.0.1:", "/.well-known/openid-configuration"}}, callback},
	}, {
		name:    "no answer in time",
		timeout: 50 * time.Millisecond,
		setup: func(t *testing.T) probeTarget {
			idp := probeIdP(t, "", nil, nil)
			idp.SetLatency(time.Minute)
			return target(idp.URL())
		},
		want: []want{{"error upstreams[0].issuer", []string{"no answer within 50ms"}}, callback},
	}, {
		name: "discovery not found",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "/realms/corp", nil, nil).URL() + "/x")
		},
		want: []want{{"error upstreams[0].issuer", []string{"404 Not Found"}}, callback},
	}, {
		name: "issuer mismatch",
		setup: func(t *testing.T) probeTarget {
			idp := probeIdP(t, "", nil, nil)
			idp.SetDiscoveryIssuer("https://elsewhere.example.com")
			return target(idp.URL())
		},
		want: []want{{"error upstreams[0].issuer", []string{`discovery says issuer "https://elsewhere.example.com" but the config says "http://127.0.0.1:`}}, callback},
	}, {
		name: "issuer differs in the trailing slash",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "", nil, nil).URL() + "/")
		},
		want: []want{{"error upstreams[0].issuer", []string{"trailing slash", "Auth0"}}, callback},
	}, {
		name: "templated Entra ID issuer without tenants",
		setup: func(t *testing.T) probeTarget {
			idp := probeIdP(t, "/organizations/v2.0", nil, nil)
			templated := strings.TrimSuffix(idp.URL(), "/organizations/v2.0") + "/{tenantid}/v2.0"
			idp.SetDiscoveryIssuer(templated)
			return target(templated)
		},
		want: []want{{"error upstreams[0].tenants", []string{"{tenantid}", "tenants: ["}}, callback},
	}, {
		name: "templated Entra ID issuer with tenants",
		setup: func(t *testing.T) probeTarget {
			idp := probeIdP(t, "/organizations/v2.0", nil, nil)
			tg := target(strings.TrimSuffix(idp.URL(), "/organizations/v2.0") + "/{tenantid}/v2.0")
			idp.SetDiscoveryIssuer(tg.issuer)
			tg.tenants = []string{"11111111-2222-3333-4444-555555555555"}
			return tg
		},
		want: []want{callback},
	}, {
		name: "templated discovery issuer for a fixed issuer",
		setup: func(t *testing.T) probeTarget {
			idp := probeIdP(t, "/organizations/v2.0", nil, nil)
			idp.SetDiscoveryIssuer(strings.TrimSuffix(idp.URL(), "/organizations/v2.0") + "/{tenantid}/v2.0")
			return target(idp.URL())
		},
		want: []want{
			{"error upstreams[0].issuer", []string{"multi-tenant template"}},
			{"error upstreams[0].tenants", []string{"{tenantid}"}},
			callback,
		},
	}, {
		name: "no jwks_uri",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "", func(doc map[string]any) { delete(doc, "jwks_uri") }, nil).URL())
		},
		want: []want{{"error upstreams[0].issuer", []string{"no jwks_uri"}}, callback},
	}, {
		name: "JWKS unreachable",
		setup: func(t *testing.T) probeTarget {
			dead := closedURL(t) + "/keys?token=s3cr3t"
			return target(probeIdP(t, "", func(doc map[string]any) { doc["jwks_uri"] = dead }, nil).URL())
		},
		want: []want{{"error upstreams[0].issuer", []string{"JWKS failed: GET http://127.0.0.1:", "/keys?…"}}, callback},
	}, {
		name: "empty JWKS",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "", nil, map[string]any{"keys": []any{}}).URL())
		},
		want: []want{{"error upstreams[0].issuer", []string{"has no keys"}}, callback},
	}, {
		name: "no key for the advertised algorithm",
		setup: func(t *testing.T) probeTarget {
			// The fake IdP's key is RSA; ES256 needs a P-256 key.
			return target(probeIdP(t, "", func(doc map[string]any) { doc["id_token_signing_alg_values_supported"] = []string{"ES256"} }, nil).URL())
		},
		want: []want{{"error upstreams[0].issuer", []string{"none of the 1 keys", "ES256"}}, callback},
	}, {
		name: "only HS256 advertised: RS256 assumed",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "", func(doc map[string]any) { doc["id_token_signing_alg_values_supported"] = []string{"HS256"} }, nil).URL())
		},
		want: []want{callback},
	}, {
		name: "no end_session_endpoint",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "", func(doc map[string]any) { delete(doc, "end_session_endpoint") }, nil).URL())
		},
		want: []want{{"warning upstreams[0].logoutURL", []string{"no end_session_endpoint", "Cognito"}}, callback},
	}, {
		name: "no end_session_endpoint but a logoutURL",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", func(doc map[string]any) { delete(doc, "end_session_endpoint") }, nil).URL())
			tg.logoutURL = "https://auth.example.com/logout?client_id=keyward"
			return tg
		},
		want: []want{callback},
	}, {
		name: "cognito without a logoutURL, though discovery names an end_session_endpoint",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", nil, nil).URL())
			tg.profile = federation.ProfileCognito
			return tg
		},
		want: []want{{"warning upstreams[0].logoutURL", []string{"client_id and logout_uri"}}, callback},
	}, {
		name: "cognito with a logoutURL",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", func(doc map[string]any) { delete(doc, "end_session_endpoint") }, nil).URL())
			tg.profile = federation.ProfileCognito
			tg.logoutURL = "https://auth.example.com/logout?client_id=keyward&logout_uri=https%3A%2F%2Fsso.example.com%2F"
			return tg
		},
		want: []want{callback},
	}, {
		name: "scope not supported",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", nil, nil).URL())
			tg.scopes = append(tg.scopes, "read:all")
			return tg
		},
		want: []want{{"warning upstreams[0].scopes[3]", []string{`"read:all" is not in the provider's scopes_supported`}}, callback},
	}, {
		name: "no email_verified in claims_supported",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", func(doc map[string]any) {
				doc["claims_supported"] = []string{"sub", "iss", "email", "name", "preferred_username", "tid"} // as Entra ID's
			}, nil).URL())
			tg.emailVerified = "email_verified"
			return tg
		},
		want: []want{{"warning upstreams[0].trustEmail", []string{"email_verified is not in the provider's claims_supported", "trustEmail: true"}}, callback},
	}, {
		name: "no email_verified in claims_supported, an emailVerified claim of the operator's own",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", func(doc map[string]any) {
				doc["claims_supported"] = []string{"sub", "iss", "email", "name"}
			}, nil).URL())
			tg.emailVerified = "xms_edov"
			return tg
		},
		want: []want{callback},
	}, {
		name: "no email_verified in claims_supported, trustEmail set",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", func(doc map[string]any) {
				doc["claims_supported"] = []string{"sub", "iss", "email", "name"}
			}, nil).URL())
			tg.emailVerified, tg.trustEmail = "email_verified", true
			return tg
		},
		want: []want{callback},
	}, {
		name: "email_verified in claims_supported",
		setup: func(t *testing.T) probeTarget {
			tg := target(probeIdP(t, "", nil, nil).URL())
			tg.emailVerified = "email_verified"
			return tg
		},
		want: []want{callback},
	}, {
		name: "missing endpoints",
		setup: func(t *testing.T) probeTarget {
			return target(probeIdP(t, "", func(doc map[string]any) {
				delete(doc, "authorization_endpoint")
				delete(doc, "token_endpoint")
			}, nil).URL())
		},
		want: []want{
			{"error upstreams[0].issuer", []string{"no authorization_endpoint"}},
			{"error upstreams[0].issuer", []string{"no token_endpoint"}},
			callback,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = probeTimeout
			}
			got := probeUpstream(t.Context(), probeClient(), timeout, tt.setup(t), "https://sso.example.com")
			var gotPaths, wantPaths []string
			for _, f := range got {
				gotPaths = append(gotPaths, f.sev.String()+" "+f.path)
			}
			for _, w := range tt.want {
				wantPaths = append(wantPaths, w.sevPath)
			}
			if diff := cmp.Diff(wantPaths, gotPaths); diff != "" {
				t.Fatalf("probeUpstream() findings (-want +got):\n%s\nall: %+v", diff, got)
			}
			for i, w := range tt.want {
				for _, s := range w.contains {
					if !strings.Contains(got[i].msg, s) {
						t.Errorf("finding %d = %q, want it to contain %q", i, got[i].msg, s)
					}
				}
				if strings.Contains(got[i].msg, "s3cr3t") {
					t.Errorf("finding %d = %q shows a URL's query", i, got[i].msg)
				}
			}
		})
	}
}

func target(issuer string) probeTarget {
	return probeTarget{path: "upstreams[0]", id: "corp", issuer: issuer, clientID: "keyward", scopes: []string{"openid", "email", "profile"}}
}

func TestProbeTrustIssuer(t *testing.T) {
	good := probeIdP(t, "", nil, nil)
	moved := probeIdP(t, "", nil, nil)
	moved.SetDiscoveryIssuer("https://elsewhere.example.com")
	tests := []struct {
		name, issuer, want string // want: "" for no finding, else a part of the warning
	}{
		{"good", good.URL(), ""},
		{"unreachable", closedURL(t), "discovery failed"},
		{"issuer mismatch", moved.URL(), `discovery says issuer "https://elsewhere.example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := probeTrustIssuer(t.Context(), probeClient(), probeTimeout, "trust[0]", tt.issuer)
			switch {
			case tt.want == "" && len(got) != 0:
				t.Errorf("probeTrustIssuer(%q) = %+v, want none", tt.issuer, got)
			case tt.want != "" && (len(got) != 1 || got[0].sev != sevWarning || got[0].path != "trust[0].issuer" || !strings.Contains(got[0].msg, tt.want)):
				t.Errorf("probeTrustIssuer(%q) = %+v, want one warning at trust[0].issuer containing %q", tt.issuer, got, tt.want)
			}
		})
	}
}

// writeProbeConfig writes a valid keyward.yaml whose upstreams have the
// given issuers, with trustIssuer as a trust rule's issuer when set. An
// issuer may be followed by ", " and more fields of its flow mapping.
func writeProbeConfig(t *testing.T, trustIssuer string, issuers ...string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var b strings.Builder
	fmt.Fprintf(&b, "issuer: https://sso.example.com\nsessionSecretFile: %s\nstore: {path: %s}\nupstreams:\n",
		write("session", "0123456789abcdef0123456789abcdef\n"), filepath.Join(dir, "keyward.db"))
	secret := write("upstream", "upstream-secret\n")
	for i, iss := range issuers {
		iss, extra, _ := strings.Cut(iss, ", ")
		if extra != "" {
			extra = ", " + extra
		}
		fmt.Fprintf(&b, "  - {id: up%d, issuer: %q, clientID: keyward, clientSecretFile: %s%s}\n", i, iss, secret, extra)
	}
	b.WriteString("clients:\n  - {id: app, redirectURIs: [https://app.example.com/cb]}\n")
	if trustIssuer != "" {
		fmt.Fprintf(&b, "trust:\n  - {name: ci, issuer: %q, audience: https://sso.example.com, subject: \"ci:{sub}\", audiences: [api]}\n", trustIssuer)
	}
	return write("keyward.yaml", b.String())
}

func TestCheckConfigProbeExitStatus(t *testing.T) {
	good := probeIdP(t, "", nil, nil).URL()
	noLogout := probeIdP(t, "", func(doc map[string]any) { delete(doc, "end_session_endpoint") }, nil).URL()
	empty := probeIdP(t, "", nil, map[string]any{"keys": []any{}}).URL()
	azure := probeIdP(t, "/organizations/v2.0", nil, nil)
	templated := strings.TrimSuffix(azure.URL(), "/organizations/v2.0") + "/{tenantid}/v2.0"
	azure.SetDiscoveryIssuer(templated)
	dead := closedURL(t)
	tests := []struct {
		name     string
		path     string
		wantCode int
		want     []string // lines (or their starts) in the output
	}{{
		name: "good", path: writeProbeConfig(t, "", good), wantCode: 0,
		want: []string{"probing upstreams[0] (up0) " + good + " ok in ", "  info     upstreams[0]: register https://sso.example.com/callback", "probe found 0 errors, 0 warnings"},
	}, {
		name: "warnings only", path: writeProbeConfig(t, dead, good, noLogout), wantCode: 0,
		want: []string{
			"probing upstreams[1] (up1) " + noLogout + " ok, 1 warning in ",
			"  warning  upstreams[1].logoutURL: discovery has no end_session_endpoint",
			"probing trust[0] (ci) " + dead + " ok, 1 warning in ",
			"  warning  trust[0].issuer: discovery failed",
			"probe found 0 errors, 2 warnings",
		},
	}, {
		name: "profile, logoutURL and tenants are read from the file", wantCode: 0,
		path: writeProbeConfig(t, "",
			noLogout+`, logoutURL: "https://auth.example.com/logout?client_id=keyward"`,
			templated+", profile: azuread, tenants: [11111111-2222-3333-4444-555555555555]",
			good+", profile: cognito"),
		want: []string{
			"probing upstreams[0] (up0) " + noLogout + " ok in ",
			"probing upstreams[1] (up1) " + templated + " ok in ",
			"probing upstreams[2] (up2) " + good + " ok, 1 warning in ",
			"  warning  upstreams[2].logoutURL: Cognito's logout endpoint needs client_id and logout_uri",
			"probe found 0 errors, 1 warning",
		},
	}, {
		name: "unreachable and empty JWKS", path: writeProbeConfig(t, "", dead, empty), wantCode: exitFailure,
		want: []string{
			"probing upstreams[0] (up0) " + dead + " 1 error in ",
			"probing upstreams[1] (up1) " + empty + " 1 error in ",
			"probe found 2 errors, 0 warnings",
			"keyward: ",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runCLI(t, "check-config", "--probe", "-c", tt.path)
			if code != tt.wantCode {
				t.Errorf("check-config --probe exit code = %d, want %d; output:\n%s", code, tt.wantCode, out)
			}
			lines := strings.Split(out, "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w) || strings.HasSuffix(l, w)
				}
				if !found {
					t.Errorf("output has no line starting or ending with %q:\n%s", w, out)
				}
			}
		})
	}
}

// An invalid file that parses is still probed, and fails.
func TestCheckConfigProbeInvalidFile(t *testing.T) {
	good := probeIdP(t, "", nil, nil).URL()
	path := writeProbeConfig(t, "", good)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte("clientID: keyward"), []byte(`clientID: ""`), 1)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "check-config", "--probe", "-c", path)
	if code != exitFailure || !strings.Contains(out, "upstreams[0].clientID: set it") || !strings.Contains(out, "probing upstreams[0] (up0) "+good+" ok in ") {
		t.Errorf("check-config --probe on an invalid file: code %d, output:\n%s", code, out)
	}
}

// Without --probe, check-config contacts nothing.
func TestCheckConfigWithoutProbe(t *testing.T) {
	idp := probeIdP(t, "", nil, nil)
	out, code := runCLI(t, "check-config", "-c", writeProbeConfig(t, "", idp.URL()))
	if code != 0 || strings.Contains(out, "probing") || idp.Hits("discovery") != 0 {
		t.Errorf("check-config: code %d, %d discovery requests, output:\n%s", code, idp.Hits("discovery"), out)
	}
}
