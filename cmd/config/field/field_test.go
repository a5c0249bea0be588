package field

import (
	"errors"
	"testing"
)

func TestCheckURL(t *testing.T) {
	issuer := URLRule{Example: "https://sso.example.com"}
	jwks := URLRule{Query: true, Example: "https://sso.example.com/keys"}
	feed := URLRule{Why: "the verifier sends its client secret there"}
	tests := []struct {
		raw  string
		rule URLRule
		want string
	}{
		{"https://sso.example.com", issuer, ""},
		{"https://sso.example.com/tenant/v2.0", issuer, ""},
		{"http://127.0.0.1:5556", issuer, ""},
		{"http://localhost:5556/", issuer, ""},
		{"http://[::1]:5556", issuer, ""},
		{"https://sso.example.com/keys?v=2", jwks, ""},

		{"", issuer, `"" must be an absolute https URL with a host, e.g. https://sso.example.com`},
		{"sso.example.com", issuer, `"sso.example.com" must be an absolute https URL with a host, e.g. https://sso.example.com`},
		{"/keys", URLRule{}, `"/keys" must be an absolute https URL with a host`},
		{"ftp://sso.example.com", issuer, `"ftp://sso.example.com" must be an absolute https URL with a host, e.g. https://sso.example.com`},
		{"https://", issuer, `"https://" must be an absolute https URL with a host, e.g. https://sso.example.com`},
		{"http://sso.example.com", issuer, `"http://sso.example.com" must use https (http is allowed only for localhost/127.0.0.1/[::1])`},
		{"http://foo.localhost", issuer, `"http://foo.localhost" must use https (http is allowed only for localhost/127.0.0.1/[::1])`},
		{"http://broker.example.com/revocations", feed, `"http://broker.example.com/revocations" must use https (http is allowed only for localhost/127.0.0.1/[::1]): the verifier sends its client secret there`},
		{"https://sso.example.com?tenant=1", issuer, `"https://sso.example.com?tenant=1" must not have a query, fragment or user info`},
		{"https://sso.example.com?", issuer, `"https://sso.example.com?" must not have a query, fragment or user info`},
		{"https://sso.example.com#x", issuer, `"https://sso.example.com#x" must not have a query, fragment or user info`},
		{"https://sso.example.com#", issuer, `"https://sso.example.com#" must not have a query, fragment or user info`},
		{"https://u:p@sso.example.com", issuer, `"https://u:p@sso.example.com" must not have a query, fragment or user info`},
		{"https://u@sso.example.com/keys?v=1", jwks, `"https://u@sso.example.com/keys?v=1" must not have a fragment or user info`},
		{"https://sso.example.com/keys#k", jwks, `"https://sso.example.com/keys#k" must not have a fragment or user info`},
	}
	for _, tt := range tests {
		if got := CheckURL(tt.raw, tt.rule); got != tt.want {
			t.Errorf("CheckURL(%q, %+v) = %q, want %q", tt.raw, tt.rule, got, tt.want)
		}
	}
}

func TestErrorAs(t *testing.T) {
	err := errors.Join(errors.New("other"), &Error{Path: "issuer", Msg: "set it"})
	var fe *Error
	if !errors.As(err, &fe) || fe.Error() != "issuer: set it" {
		t.Errorf("errors.As(*Error) = %v, want issuer: set it", fe)
	}
}
