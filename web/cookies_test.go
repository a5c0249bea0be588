package web

import "testing"

func TestCSRFToken(t *testing.T) {
	j := newCookieJar([]byte("0123456789abcdef0123456789abcdef"), true)
	tok := j.csrfToken(csrfEndSession, "sid-1")
	for _, tt := range []struct {
		name, purpose, sid, got string
		want                    bool
	}{
		{"its own session", csrfEndSession, "sid-1", tok, true},
		{"another session", csrfEndSession, "sid-2", tok, false},
		{"another purpose", "other", "sid-1", tok, false},
		{"no session", csrfEndSession, "", j.csrfToken(csrfEndSession, ""), false},
		{"no token", csrfEndSession, "sid-1", "", false},
		{"the session cookie's seal", csrfEndSession, "sid-1", j.mac(j.session, "sid-1"), false},
	} {
		if got := j.checkCSRF(tt.purpose, tt.sid, tt.got); got != tt.want {
			t.Errorf("%s: checkCSRF(%q, %q, …) = %v, want %v", tt.name, tt.purpose, tt.sid, got, tt.want)
		}
	}
	other := newCookieJar([]byte("another secret, another deployment!"), true)
	if other.checkCSRF(csrfEndSession, "sid-1", tok) {
		t.Error("a token made under another secret was accepted")
	}
}
