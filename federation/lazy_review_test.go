package federation

import (
	"errors"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// failingTransport refuses every request, as an unreachable network does.
type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network unreachable")
}

// A profile whose preset fixes the issuer (google) leaves Config.Issuer
// empty. Before discovery succeeds the lazy upstream must still answer with
// that issuer: the broker picks the upstream of a native ID token by
// Issuer(), so an empty one turned "try again later" into a permanent
// invalid_grant ("issuer not trusted") for every Google native sign-in
// during the outage.
func TestOpenLazyPresetIssuerBeforeReady(t *testing.T) {
	cfg := Config{
		ID: "google", Profile: ProfileGoogle, ClientID: "web", ClientSecret: lazySecret,
		RedirectURL: redirectURL, NativeClientIDs: []string{"ios-app"},
	}
	l, err := OpenLazy(t.Context(), cfg, &http.Client{Transport: failingTransport{}}, nil, lazyHooks(newStepWait()))
	if err != nil {
		t.Fatalf("OpenLazy() = %v", err)
	}
	if l.Ready() == nil {
		t.Fatal("Ready() = nil with an unreachable network")
	}
	if got := l.Issuer(); got != GoogleIssuer {
		t.Errorf("Issuer() before ready = %q, want %q", got, GoogleIssuer)
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": GoogleIssuer, "aud": "ios-app", "sub": "alice"}).SignedString([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.VerifyIDToken(t.Context(), raw)
	checkIs(t, "VerifyIDToken(google token before ready)", err, ErrUpstreamUnavailable, ErrIssuerUnavailable)
}
