package demoapp

import (
	"encoding/base64"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	jwt := seg(`{"alg":"ES256","typ":"at+jwt","kid":"k1"}`) + "." +
		seg(`{"sub":"u","iat":1699999900,"exp":`+strconv.Itoa(1_700_000_060)+`}`) + ".sig"
	expired := seg(`{"alg":"RS256"}`) + "." + seg(`{"exp":1699999000}`) + ".sig"
	fallback := now.Add(5 * time.Minute)

	tests := []struct {
		name string
		raw  string
		want tokenView
	}{
		{
			name: "jwt",
			raw:  jwt,
			want: tokenView{
				Present: true, IsJWT: true, Alg: "ES256", Typ: "at+jwt", Kid: "k1",
				Header:    "{\n  \"alg\": \"ES256\",\n  \"typ\": \"at+jwt\",\n  \"kid\": \"k1\"\n}",
				Claims:    "{\n  \"sub\": \"u\",\n  \"iat\": 1699999900,\n  \"exp\": 1700000060\n}",
				IssuedAt:  formatTime(time.Unix(1699999900, 0)),
				ExpiresAt: formatTime(time.Unix(1700000060, 0)),
				ExpiresIn: "valid for 1m0s",
			},
		},
		{
			name: "expired",
			raw:  expired,
			want: tokenView{
				Present: true, IsJWT: true, Alg: "RS256",
				Header:    "{\n  \"alg\": \"RS256\"\n}",
				Claims:    "{\n  \"exp\": 1699999000\n}",
				ExpiresAt: formatTime(time.Unix(1699999000, 0)),
				ExpiresIn: "expired 16m40s ago",
				Expired:   true,
			},
		},
		{
			name: "opaque uses expires_in",
			raw:  "opaque-token",
			want: tokenView{Present: true, ExpiresAt: formatTime(fallback), ExpiresIn: "valid for 5m0s"},
		},
		{
			name: "three segments but not JSON",
			raw:  "a.b.c",
			want: tokenView{Present: true, ExpiresAt: formatTime(fallback), ExpiresIn: "valid for 5m0s"},
		},
		{
			name: "absent",
			raw:  "",
			want: tokenView{ExpiresAt: formatTime(fallback), ExpiresIn: "valid for 5m0s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeToken("x", "X", tt.raw, fallback, now)
			tt.want.ID, tt.want.Label, tt.want.Raw = "x", "X", tt.raw
			got.claims = nil
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(tokenView{})); diff != "" {
				t.Errorf("decodeToken(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestPendingLoginRoundTrip(t *testing.T) {
	p := pendingLogin{state: randomToken(), nonce: randomToken(), verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}
	got, ok := decodePendingLogin(p.encode())
	if !ok || got != p {
		t.Errorf("decodePendingLogin(encode(%+v)) = %+v, %v", p, got, ok)
	}
	for _, bad := range []string{"", "a.b", "a..c", "a.b.c.d"} {
		if _, ok := decodePendingLogin(bad); ok {
			t.Errorf("decodePendingLogin(%q) ok, want rejected", bad)
		}
	}
}

// The demo app ships in the keyward binary, so its non-test files must not
// pull in the testing package.
func TestNoTestingImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "testing" || strings.HasPrefix(p, "testing/") || strings.HasPrefix(p, "net/http/httptest") {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
