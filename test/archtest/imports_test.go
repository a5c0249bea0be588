package archtest

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/keyward/keyward"

// rule is what one package (or every package under a prefix) may import.
type rule struct {
	// pkg is a package path inside the module ("broker"), or a prefix
	// ending in "/..." for every package under it.
	pkg string
	// keyward are the Keyward packages it may import (same patterns).
	keyward []string
	// external are the module path prefixes outside the standard library
	// it may import; nil: any but forbidden.
	external []string
	// forbidden are module path prefixes it must not import (with
	// external nil).
	forbidden []string
	// noTesting: its non-test files must not import "testing" (code that
	// the binary links).
	noTesting bool
	// why names where the rule is written.
	why string
}

// stdOnly allows no import outside the standard library.
var stdOnly = []string{}

// leafHelpers are Keyward's helpers written once for every layer; each
// imports only the standard library (and another leaf helper), so
// web/verify may use them. They live in the folder of the concern they
// serve (keys: sealing and key sets; web: the loopback rule and the
// concurrency limit; cmd/config:
// the configuration problem type and URL rule), since the module's
// top-level folders are fixed.
var leafHelpers = []string{"keys/seal", "keys/jwkscache", "web/loopback", "web/shed", configField}

// configField is the std-only part of the configuration vocabulary: the
// problem type and the URL rule that web/verify shares with cmd/config.
const configField = "cmd/config/field"

// configVocabulary is the vocabulary of the configuration files that each
// package's configuration type uses (it imports YAML, so web/verify, whose
// configuration stays free of YAML, does not).
const configVocabulary = "cmd/config"

// drivers are the database drivers: only the store backends (and cmd, for
// error types) may import them.
var drivers = []string{"go.etcd.io/bbolt", "github.com/jackc/pgx", "github.com/lib/pq"}

// rules is the import graph as the doc.go files state it. Every package of
// the module matches exactly one rule (the first that matches).
var rules = []rule{
	{pkg: "keys/seal", external: stdOnly, noTesting: true,
		why: "keys/seal/doc.go: standard library only, so web/verify stays a leaf"},
	{pkg: "keys/jwkscache", external: stdOnly, noTesting: true,
		why: "keys/jwkscache/doc.go: standard library only, so web/verify stays a leaf"},
	{pkg: "web/loopback", external: stdOnly, noTesting: true,
		why: "web/loopback/doc.go: standard library only, so every layer may use it"},
	{pkg: "web/shed", external: stdOnly, noTesting: true,
		why: "web/shed/doc.go: standard library only, so web/verify and federation may use it"},
	{pkg: configField, keyward: []string{"web/loopback"}, external: stdOnly, noTesting: true,
		why: "cmd/config/field/doc.go: the standard library and the loopback rule only, so web/verify stays a leaf"},
	{pkg: configVocabulary, keyward: []string{"web/loopback", configField}, external: []string{"go.yaml.in/yaml/v3"}, noTesting: true,
		why: "cmd/config/doc.go: the standard library, go.yaml.in/yaml/v3, the loopback rule and cmd/config/field"},
	{pkg: "store", external: stdOnly, noTesting: true,
		why: "store/doc.go: only the standard library; never fosite, broker, keys, web or a driver"},
	{pkg: "store/bolt", keyward: []string{"store", configVocabulary}, external: []string{"go.etcd.io/bbolt"}, noTesting: true,
		why: "store/bolt/doc.go: the standard library, store and bbolt"},
	{pkg: "store/postgres", keyward: []string{"store", configVocabulary}, external: []string{"github.com/jackc/pgx/v5", "github.com/ory/fosite"}, noTesting: true,
		why: "store/postgres/doc.go: the standard library, store, pgx and fosite"},
	{pkg: "store/postgres/pgtest", external: []string{"github.com/jackc/pgx/v5"},
		why: "test support: a throwaway PostgreSQL cluster"},
	{pkg: "store/storetest", keyward: []string{"store"},
		why: "the conformance suite tests the contract, never a backend"},
	{pkg: "keys", keyward: append([]string{"store", configVocabulary}, leafHelpers...),
		external:  []string{"github.com/golang-jwt/jwt/v5", "github.com/go-jose/go-jose/v4"},
		noTesting: true,
		why:       "keys/doc.go: store, keys/seal, golang-jwt/v5, go-jose/v4; never fosite, broker, web, cmd or a backend"},
	{pkg: "federation", keyward: append([]string{configVocabulary}, leafHelpers...),
		external:  []string{"github.com/coreos/go-oidc/v3", "golang.org/x/oauth2", "github.com/golang-jwt/jwt/v5", "github.com/go-jose/go-jose/v4"},
		noTesting: true,
		why:       "federation/doc.go: go-oidc, x/oauth2, golang-jwt, go-jose; never broker, store, web or keys"},
	{pkg: "broker/...", keyward: append([]string{"broker/...", "store", "keys", "federation", configVocabulary}, leafHelpers...), forbidden: drivers, noTesting: true,
		why: "broker/doc.go: store, keys, federation; never web, web/verify, cmd or a store backend (its subpackages alike)"},
	{pkg: "web", keyward: append([]string{"broker", "keys", "store", configVocabulary}, leafHelpers...), forbidden: drivers, noTesting: true,
		why: "web/doc.go: broker (and keys, store for the admin API; cmd/config for its pages section); never a store backend"},
	{pkg: "web/scim", keyward: []string{"broker", "store"},
		external: []string{"github.com/elimity-com/scim", "github.com/scim2/filter-parser/v2"}, noTesting: true,
		why: "web/scim/doc.go: broker, store and the SCIM libraries; never web, web/verify or a store backend"},
	{pkg: "web/console", keyward: append([]string{"broker", "keys", "store", configVocabulary}, leafHelpers...),
		external: []string{"github.com/coreos/go-oidc/v3", "golang.org/x/oauth2", "github.com/prometheus/client_golang/prometheus", "github.com/prometheus/client_model"}, forbidden: drivers, noTesting: true,
		why: "web/console/doc.go: broker, keys, store records, go-oidc, x/oauth2 and Prometheus (to read web's gauges back); never web, cmd or a store backend"},
	{pkg: "web/httpserver", external: []string{"golang.org/x/net/netutil"}, noTesting: true,
		why: "web/httpserver/doc.go: the standard library and x/net/netutil"},
	{pkg: "web/verify", keyward: leafHelpers,
		external:  []string{"github.com/golang-jwt/jwt/v5", "github.com/go-jose/go-jose/v4", "golang.org/x/oauth2", "filippo.io/bigmod"},
		noTesting: true,
		why:       "web/verify/doc.go: a leaf; never broker, store, keys, web, fosite, a driver or a logging library"},
	{pkg: "cmd/keyward",
		keyward: append([]string{
			"broker", "federation", "keys", "store", "store/bolt", "store/postgres", "web", "web/console", "web/httpserver", "web/scim", "web/verify", configVocabulary,
			"test/fakeidp", "test/demoapp", // keyward demo runs them
		}, leafHelpers...),
		noTesting: true,
		why:       "the binary: the only product package that knows the store backends"},
	{pkg: "test/fakeidp", keyward: []string{"test/internal/fakesrv"}, noTesting: true,
		why: "test/fakeidp/doc.go: no Keyward package (it speaks only the protocol), no testing (keyward demo links it)"},
	{pkg: "test/fakegithub", keyward: []string{"test/internal/fakesrv"}, noTesting: true,
		why: "test/fakegithub/doc.go: no Keyward package, no testing"},
	{pkg: "test/demoapp", noTesting: true,
		why: "test/demoapp/doc.go: no Keyward package (HTTP only), no testing (keyward demo links it)"},
	{pkg: "test/internal/fakesrv", external: stdOnly, noTesting: true,
		why: "the fakes' shared HTTP plumbing: no Keyward package"},
	{pkg: "test/brokertest", keyward: []string{"broker", "federation", "keys", "store", "store/bolt", "web", "test/fakeidp"},
		why: "test support: one real broker for tests and benchmarks"},
	{pkg: "test/e2e", why: "end-to-end tests: their code is all in _test.go files"},
	{pkg: "test/gateway", why: "gateway tests: their code is all in _test.go files"},
	{pkg: "test/crash", why: "crash-safety tests (test/crash/doc.go): their code is all in _test.go files"},
	{pkg: "test/container", why: "container image tests: their code is all in _test.go files"},
	{pkg: "test/helmchart", why: "Helm chart tests: their code is all in _test.go files"},
	{pkg: "test/internal/program", external: stdOnly,
		why: "test/internal/program/program.go: finding the outside programs tests drive; standard library only"},
	{pkg: "test/archtest", external: stdOnly, why: "this package"},
	{pkg: "bench/harness",
		keyward: []string{"broker", "federation", "keys", "store", "store/bolt", "store/postgres", "test/brokertest", "test/fakeidp", "web", configVocabulary},
		why:     "bench/harness/doc.go: a measuring tool; only bench/cmd may import it"},
	{pkg: "bench/cmd/...", keyward: append([]string{"bench/harness", "broker", "test/brokertest", "web", "web/verify"}, leafHelpers...),
		why: "benchmark programs"},
}

// match reports whether the module-relative path rel matches pattern.
func match(pattern, rel string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == prefix || strings.HasPrefix(rel, prefix+"/")
	}
	return rel == pattern
}

func ruleFor(rel string) (rule, bool) {
	for _, r := range rules {
		if match(r.pkg, rel) {
			return r, true
		}
	}
	return rule{}, false
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs go list -json over the module: each package with its
// direct, non-test imports.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), goBin, "list", "-json=ImportPath,Imports", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// checkImports returns one problem per import of p that its rule does not
// allow.
func checkImports(r rule, rel string, imports []string) []string {
	var problems []string
	for _, imp := range imports {
		switch {
		case imp == "testing" || strings.HasPrefix(imp, "testing/"):
			if r.noTesting {
				problems = append(problems, rel+" imports "+imp+" outside _test.go files ("+r.why+")")
			}
		case imp == module || strings.HasPrefix(imp, module+"/"):
			target := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !anyMatch(r.keyward, target) {
				problems = append(problems, rel+" imports "+target+" ("+r.why+")")
			}
		case isStd(imp):
		case anyPrefix(r.forbidden, imp):
			problems = append(problems, rel+" imports "+imp+" ("+r.why+")")
		case r.external != nil && !anyPrefix(r.external, imp):
			problems = append(problems, rel+" imports "+imp+" ("+r.why+")")
		}
	}
	return problems
}

func anyMatch(patterns []string, rel string) bool {
	for _, p := range patterns {
		if match(p, rel) {
			return true
		}
	}
	return false
}

func anyPrefix(prefixes []string, path string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// TestImportGraph holds every package of the module to its rule.
func TestImportGraph(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		r, ok := ruleFor(rel)
		if !ok {
			t.Errorf("package %s has no rule in test/archtest: say what it may import", rel)
			continue
		}
		for _, problem := range checkImports(r, rel, p.Imports) {
			t.Error(problem)
		}
	}
}

// TestRulesMatchPackages keeps the table honest: every rule names a package
// that exists.
func TestRulesMatchPackages(t *testing.T) {
	var rels []string
	for _, p := range listPackages(t) {
		rels = append(rels, strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/"))
	}
	for _, r := range rules {
		if !anyMatchRev(r.pkg, rels) {
			t.Errorf("rule for %s matches no package", r.pkg)
		}
	}
}

func anyMatchRev(pattern string, rels []string) bool {
	for _, rel := range rels {
		if match(pattern, rel) {
			return true
		}
	}
	return false
}

// TestCheckImports checks the checker on imports each kind of rule refuses,
// so that a rule that allowed everything would be caught.
func TestCheckImports(t *testing.T) {
	tests := []struct {
		pkg     string
		imports []string
		want    int
	}{
		{"web/verify", []string{"net/http", module + "/keys/seal", "github.com/golang-jwt/jwt/v5"}, 0},
		{"web/verify", []string{module + "/store"}, 1},
		{"web/verify", []string{module + "/broker", "github.com/ory/fosite"}, 2},
		{"web/verify", []string{"log/slog", "github.com/jackc/pgx/v5"}, 1},
		{"store", []string{module + "/keys"}, 1},
		{"store", []string{"go.etcd.io/bbolt"}, 1},
		{"broker", []string{module + "/store/bolt"}, 1},
		{"broker", []string{module + "/web"}, 1},
		{"federation", []string{module + "/store"}, 1},
		{"keys", []string{module + "/broker", "github.com/ory/fosite"}, 2},
		{"broker", []string{"github.com/ory/fosite", "go.etcd.io/bbolt"}, 1},
		{"web", []string{"github.com/jackc/pgx/v5/pgxpool"}, 1},
		{"web", []string{module + "/store/postgres"}, 1},
		{"test/fakeidp", []string{"testing", module + "/broker"}, 2},
		{"keys/seal", []string{"golang.org/x/crypto/chacha20poly1305"}, 1},
		{"cmd/keyward", []string{module + "/store/bolt", module + "/test/brokertest"}, 1},
	}
	for _, tt := range tests {
		r, ok := ruleFor(tt.pkg)
		if !ok {
			t.Fatalf("no rule for %s", tt.pkg)
		}
		if got := checkImports(r, tt.pkg, tt.imports); len(got) != tt.want {
			t.Errorf("checkImports(%s, %v) = %q, want %d problems", tt.pkg, tt.imports, got, tt.want)
		}
	}
}
