package broker

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckAuthorizeForm(t *testing.T) {
	valid := func() url.Values {
		return url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.example/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s0123456789"}, "code_challenge": {strings.Repeat("c", 43)}, "code_challenge_method": {"S256"}}
	}
	for _, tt := range []struct {
		name string
		edit func(url.Values)
		want string // in the page's message; "" = accepted
	}{
		{"valid", func(url.Values) {}, ""},
		{"unknown parameters are not looked at", func(f url.Values) { f.Set("pad", strings.Repeat("x", 100_000)); f.Add("pad", "y") }, ""},
		{"every parameter at its cap but under the total", func(f url.Values) {
			f.Set("state", strings.Repeat("s", 1024))
			f.Set("nonce", strings.Repeat("n", 512))
			f.Set("id_token_hint", strings.Repeat("h", 4096))
		}, ""},
		{"state over its cap", func(f url.Values) { f.Set("state", strings.Repeat("s", 1025)) }, "state is 1025 bytes long"},
		{"repeated nonce", func(f url.Values) { f.Add("nonce", "a"); f.Add("nonce", "b") }, "nonce more than once"},
		{"16 audiences", func(f url.Values) { f["audience"] = make([]string, 16) }, ""},
		{"17 empty audiences", func(f url.Values) { f["audience"] = make([]string, 17) }, "more than 16 audiences"},
		{"over the total", func(f url.Values) {
			f.Set("redirect_uri", strings.Repeat("r", 2048))
			f.Set("state", strings.Repeat("s", 1024))
			f.Set("id_token_hint", strings.Repeat("h", 4096))
			f.Set("scope", strings.Repeat("o", 1024))
		}, "together"},
	} {
		f := valid()
		tt.edit(f)
		err := checkAuthorizeForm(f)
		var re *Refusal
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: checkAuthorizeForm() = %v, want nil", tt.name, err)
		case tt.want != "" && (!errors.As(err, &re) || re.Kind != RefusedAuthorizeForm || !strings.Contains(re.Detail, tt.want)):
			t.Errorf("%s: checkAuthorizeForm() = %v, want RefusedAuthorizeForm saying %q", tt.name, err, tt.want)
		}
	}
}

func TestKeepAuthorizeParams(t *testing.T) {
	f := url.Values{"client_id": {"app"}, "audience": {"a", "b"}, "pad": {"x"}, "ui_locales": {"de"}, "request": {"jwt"}}
	keepAuthorizeParams(f)
	if d := cmp.Diff(url.Values{"client_id": {"app"}, "audience": {"a", "b"}}, f); d != "" {
		t.Errorf("keepAuthorizeParams (-want +got):\n%s", d)
	}
}
