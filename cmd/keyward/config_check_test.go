package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkOutput runs check, requires it to fail, and returns its report lines
// without the file prefix.
func checkOutput(t *testing.T, check func(string, *bytes.Buffer) error, path string) []string {
	t.Helper()
	var out bytes.Buffer
	if err := check(path, &out); err == nil {
		t.Fatalf("check(%s) = nil, want problems; output:\n%s", path, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, path+": ")
	}
	return lines
}

// expectProblems requires exactly one line per wanted prefix, in any order.
func expectProblems(t *testing.T, lines, want []string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for _, w := range want {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, w) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d problems start with %q, want 1; all:\n%s", n, w, strings.Join(lines, "\n"))
		}
	}
}

// check-config lists every problem of a file with many independent
// mistakes in one run: those that do not decode (unknown fields, bad
// durations), unset environment variables, the validation rules and the
// secret files, none hiding another, and none reported twice.
func TestCheckConfigReportsEveryProblemAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "keyward.yaml", strings.ReplaceAll(`
issuer: http://sso.example.com
sessionSecret: ${KEYWARD_TEST_UNSET_SESSION}
store: {path: DIR/keyward.db}
lsten: 127.0.0.1:8080
keys:
  algorithm: HS256
  rotationPeriod: 1 day
tokens:
  accessTokenTTL: 2h
  idTokenTTL: soon
upstreams:
  - id: Corp
    issuer: https://idp.example.com
    clientID: keyward
    clientSecretFile: DIR/missing-upstream-secret
clients:
  - id: grafana
    secret: ${KEYWARD_TEST_UNSET_GRAFANA}
    redirectURIs: [https://grafana.example.com/cb]
    grantTypes: [password]
logging:
  level: loud
`, "DIR", dir))
	lines := checkOutput(t, func(p string, w *bytes.Buffer) error { return checkConfig(p, w) }, path)
	expectProblems(t, lines, []string{
		"line 5: lsten: unknown field",
		`line 8: keys.rotationPeriod: "1 day" is not a duration`,
		`line 11: tokens.idTokenTTL: "soon" is not a duration`,
		"sessionSecret: environment variable KEYWARD_TEST_UNSET_SESSION is not set",
		"clients[0].secret: environment variable KEYWARD_TEST_UNSET_GRAFANA is not set",
		`issuer: "http://sso.example.com" must use https`,
		`keys.algorithm: "HS256" is not supported`,
		"tokens.accessTokenTTL: 2h is too long",
		`upstreams[0].id: "Corp" must match`,
		`clients[0].grantTypes[0]: "password" is not supported`,
		`logging.level: "loud" is not a level`,
		"upstreams[0].clientSecretFile: open " + filepath.Join(dir, "missing-upstream-secret"),
	})
}

// verify --check lists every problem at once too, and opens the secret
// files that verify would fail on.
func TestVerifyCheckReportsEveryProblemAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "verify.yaml", strings.ReplaceAll(`
issuer: https://sso.example.com
audience: [orders-api]
leeway: 30
gateway: apache
algorithms: [HS256]
cache: {maxEntries: -5}
rules:
  - {path: /, browser: true}
browser:
  clientID: edge
  cookieSecretFile: DIR/missing-cookie
  redirectURL: https://shop.example.com/oauth2/callback
revocationFeed:
  clientID: edge
  clientSecretFile: DIR/missing-feed-secret
  interval: 10m
  maxStaleness: 1h
`, "DIR", dir))
	lines := checkOutput(t, func(p string, w *bytes.Buffer) error { return checkVerifyConfig(p, w) }, path)
	expectProblems(t, lines, []string{
		`line 4: leeway: "30" is not a duration`,
		`algorithms[0]: "HS256" is not supported`,
		"cache.maxEntries: -5",
		`gateway: "apache" is not a gateway`,
		"revocationFeed.interval: 10m is too long",
		"browser.cookieSecretFile: open " + filepath.Join(dir, "missing-cookie"),
		"revocationFeed.clientSecretFile: open " + filepath.Join(dir, "missing-feed-secret"),
	})
}

// check-config names, by path, an unknown signing algorithm in the keys
// section or on a client, and a client's ID-token algorithm the key set
// holds no key of; a client may ask for either algorithm the set holds.
func TestCheckConfigSigningAlgorithms(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "keyward.yaml", strings.ReplaceAll(`
issuer: https://sso.example.com
sessionSecretFile: DIR/session
store: {path: DIR/keyward.db}
keys:
  accessTokenAlgorithm: PS256
upstreams:
  - id: corp
    issuer: https://idp.example.com
    clientID: keyward
    clientSecretFile: DIR/session
clients:
  - id: grafana
    secretFile: DIR/session
    redirectURIs: [https://grafana.example.com/cb]
    idTokenSignedResponseAlg: HS256
  - id: wiki
    secretFile: DIR/session
    redirectURIs: [https://wiki.example.com/cb]
    idTokenSignedResponseAlg: EdDSA
  - id: shop
    secretFile: DIR/session
    redirectURIs: [https://shop.example.com/cb]
    idTokenSignedResponseAlg: RS256
`, "DIR", dir))
	writeFile(t, dir, "session", strings.Repeat("s", 40))
	lines := checkOutput(t, func(p string, w *bytes.Buffer) error { return checkConfig(p, w) }, path)
	expectProblems(t, lines, []string{
		`keys.accessTokenAlgorithm: "PS256" is not supported; use RS256`,
		`clients[0].idTokenSignedResponseAlg: "HS256" is not supported; use RS256, ES256, EdDSA`,
		`clients[1].idTokenSignedResponseAlg: "EdDSA": the key set holds no EdDSA key (keys.algorithm and keys.accessTokenAlgorithm give it RS256)`,
	})

	// With keys.accessTokenAlgorithm EdDSA the set holds RS256 and EdDSA.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(data), "accessTokenAlgorithm: PS256", "accessTokenAlgorithm: EdDSA", 1)
	fixed = strings.Replace(fixed, "idTokenSignedResponseAlg: HS256", "idTokenSignedResponseAlg: ES256", 1)
	writeFile(t, dir, "keyward.yaml", fixed)
	lines = checkOutput(t, func(p string, w *bytes.Buffer) error { return checkConfig(p, w) }, path)
	expectProblems(t, lines, []string{
		`clients[0].idTokenSignedResponseAlg: "ES256": the key set holds no ES256 key (keys.algorithm and keys.accessTokenAlgorithm give it RS256 and EdDSA); use one of those, or set keys.accessTokenAlgorithm or keys.algorithm to ES256`,
	})
	writeFile(t, dir, "keyward.yaml", strings.Replace(fixed, "idTokenSignedResponseAlg: ES256", "idTokenSignedResponseAlg: EdDSA", 1))
	var out bytes.Buffer
	if err := checkConfig(path, &out); err != nil {
		t.Errorf("check-config with clients asking RS256 and EdDSA of an RS256+EdDSA key set = %v:\n%s", err, out.String())
	}
}
