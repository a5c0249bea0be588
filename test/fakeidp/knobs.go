package fakeidp

import (
	"maps"
	"time"
)

// Tamper makes the token endpoint hand out bad ID tokens. Each flag stays in
// force until SetTamper is called again; SetTamper(Tamper{}) restores honesty.
type Tamper struct {
	WrongNonce    bool // nonce differs from the one sent to /authorize
	WrongIssuer   bool // iss is the issuer with "/wrong" appended
	WrongAudience bool // aud is another client
	Expired       bool // exp lies an hour in the past
	BadSignature  bool // one bit of the signature is flipped
	OmitIDToken   bool // the token response has no id_token
}

// SetNextClaims overrides or adds claims in the next ID token only; a nil
// value removes that claim. Userinfo is not affected.
func (s *Server) SetNextClaims(claims map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextClaims = maps.Clone(claims)
}

// SetTamper sets how ID tokens are tampered with from now on.
func (s *Server) SetTamper(t Tamper) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = t
}

// RotateKey switches to a new signing key with a new kid. The old key is no
// longer published, so tokens it signed stop verifying.
func (s *Server) RotateKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	key, err := keyAt(s.alg, s.keyIndex+1)
	if err != nil {
		// Only key generation can fail here, and crypto/rand does not.
		panic("fakeidp: rotate key: " + err.Error())
	}
	s.keyIndex++
	s.key = key
}

// KeyID returns the kid of the current signing key.
func (s *Server) KeyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key.KeyID
}

// SetDiscoveryIssuer makes the discovery document advertise issuer instead of
// the real one; "" restores it. Endpoints and ID tokens are unchanged.
func (s *Server) SetDiscoveryIssuer(issuer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discIss = issuer
}

// SetAuthResponseIssuer overrides the iss parameter of authorization
// responses from now on: iss is sent as it is, or with omit none at all,
// whatever Quirks.AuthResponseIss says (discovery is unchanged).
// SetAuthResponseIssuer("", false) restores the default.
func (s *Server) SetAuthResponseIssuer(iss string, omit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respIss, s.respIssOmit = iss, omit
}

// FailToken makes every token request fail with status and a plain-text
// body until FailToken(0).
func (s *Server) FailToken(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus = status
}

// RefreshAnswer is how the token endpoint answers the refresh_token grant
// (SetRefreshAnswer). Each one is what a real provider sends in that case.
type RefreshAnswer int

const (
	// RefreshHonest redeems and rotates the refresh token (the default).
	RefreshHonest RefreshAnswer = iota
	// RefreshInvalidGrant: 400 {"error":"invalid_grant"}, the grant is
	// gone (the person was disabled, or signed out everywhere).
	RefreshInvalidGrant
	// RefreshDexDeletedUser: 500 {"error":"invalid_request"}, what Dex
	// v2.45.1 answers for a person deleted at its connector.
	RefreshDexDeletedUser
	// RefreshInvalidClient: 401 {"error":"invalid_client"}, the client's
	// own credentials are refused (a rotated client secret).
	RefreshInvalidClient
	// RefreshUnauthorizedClient: 400 {"error":"unauthorized_client"}, the
	// client may not use the refresh_token grant.
	RefreshUnauthorizedClient
	// RefreshUnavailable: 503 with a plain-text body (an outage).
	RefreshUnavailable
	// RefreshHang sends no answer until the client gives up (a timeout).
	RefreshHang
)

// SetRefreshAnswer makes every refresh_token grant answer a from now on;
// SetRefreshAnswer(RefreshHonest) restores the default. Authorization-code
// grants are not affected.
func (s *Server) SetRefreshAnswer(a RefreshAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshAnswer = a
}

// SetLatency delays every request by d (0 for none); a request whose client
// gives up is dropped.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Hits returns how many requests reached endpoint: "discovery", "keys",
// "authorize" (form posts included), "token", "userinfo" or "logout".
// Unknown names count 0.
func (s *Server) Hits(endpoint string) int64 {
	n, _ := s.hits.Get(endpoint)
	return n
}
