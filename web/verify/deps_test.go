package verify

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLeafDependencies holds the package to its promise in doc.go: gateways
// link it without the broker, the store or a database driver.
func TestLeafDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "github.com/keyward/keyward/web/verify").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"keyward/keyward/broker", "keyward/keyward/store", "keyward/keyward/keys", "ory/fosite", "bbolt", "pgx", "lib/pq"}
	// golang.org/x/oauth2 is browser mode's code exchange and refresh grant.
	// filippo.io/bigmod is the public copy of crypto/rsa's own modular
	// arithmetic (crypto/internal/fips140/bigmod), maintained by its author:
	// it lets RS256/384/512 checks reuse a modulus prepared per key, which
	// crypto/rsa rebuilds per call (rsapkcs1.go). golang.org/x/sys/cpu is its
	// only dependency (CPU feature detection for its assembly).
	allowed := []string{
		"github.com/golang-jwt/jwt/v5", "github.com/go-jose/go-jose/v4", "golang.org/x/oauth2",
		"filippo.io/bigmod", "golang.org/x/sys/cpu", "github.com/keyward/keyward/web/verify",
	}
	// Keyward's own helpers written once for every package, which import
	// only the standard library (test/archtest checks them).
	leafHelpers := []string{"github.com/keyward/keyward/keys/seal", "github.com/keyward/keyward/keys/jwkscache", "github.com/keyward/keyward/web/loopback", "github.com/keyward/keyward/web/shed", "github.com/keyward/keyward/cmd/config/field"}
	allowed = append(allowed, leafHelpers...)
	for dep := range strings.FieldsSeq(string(out)) {
		if slices.Contains(leafHelpers, dep) {
			continue
		}
		for _, f := range forbidden {
			if strings.Contains(dep, f) {
				t.Errorf("web/verify depends on %s (matches %q)", dep, f)
			}
		}
		first, _, _ := strings.Cut(dep, "/")
		if !strings.Contains(first, ".") || strings.HasPrefix(dep, "vendor/") {
			continue // standard library
		}
		if !hasAnyPrefix(dep, allowed) {
			t.Errorf("web/verify depends on %s: only std, golang-jwt/v5, go-jose/v4, x/oauth2, filippo.io/bigmod (with x/sys/cpu) and Keyward's leaf helpers (keys/seal, keys/jwkscache, web/loopback, web/shed, cmd/config/field) are allowed", dep)
		}
	}
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}
