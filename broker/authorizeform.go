package broker

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
)

// The /authorize parameters Keyward keeps. /authorize needs no
// authentication, and what it keeps is written to the store (the login
// attempt, then the code's records), so only the parameters the flow
// reads are kept, each with a cap in bytes; an oversized or repeated one
// is refused (RefusedAuthorizeForm, a 400 page in web) before fosite
// parses the request, so that nothing oversized is stored or echoed in an error redirect. Everything
// else is dropped once fosite has validated the request.
//
// What reads them: fosite's request parsing (client_id, redirect_uri,
// response_type, response_mode, scope, state, audience), its OpenID
// Connect and PKCE handlers when the code and the ID token are issued
// (nonce, prompt, max_age, id_token_hint, acr_values, code_challenge,
// code_challenge_method), and Keyward's own login (prompt, max_age,
// login_hint). ui_locales, display and claims_locales are not used.
var authorizeParamCaps = map[string]int{
	"client_id":             256,
	"redirect_uri":          2048,
	"response_type":         64,
	"response_mode":         32,
	"scope":                 1024,
	"state":                 1024,
	"nonce":                 512,
	"code_challenge":        128,
	"code_challenge_method": 16,
	"audience":              1024, // all values together
	"prompt":                64,
	"max_age":               16,
	"login_hint":            256,
	"acr_values":            256,
	"id_token_hint":         4096,
}

const (
	// maxAuthorizeAudiences bounds the audience parameter, the only one
	// that may be repeated.
	maxAuthorizeAudiences = 16
	// maxAuthorizeFormBytes bounds all kept parameters together (names
	// and values): an attempt's form is at most this big.
	maxAuthorizeFormBytes = 8 << 10
)

// checkAuthorizeForm refuses an /authorize form with a kept parameter
// over its cap, repeated (RFC 6749 §3.1; audience may be repeated up to
// maxAuthorizeAudiences times), or with kept parameters over
// maxAuthorizeFormBytes together. Parameters that are not kept are not
// looked at: they are dropped.
func checkAuthorizeForm(form url.Values) error {
	total := 0
	for _, name := range slices.Sorted(maps.Keys(authorizeParamCaps)) {
		values := form[name]
		if len(values) > 1 && name != "audience" {
			return errAuthorizeForm(fmt.Sprintf("it names the parameter %s more than once", name))
		}
		if len(values) > maxAuthorizeAudiences {
			return errAuthorizeForm(fmt.Sprintf("it names more than %d audiences (audience)", maxAuthorizeAudiences))
		}
		n := 0
		for _, v := range values {
			n += len(v)
			total += len(name) + len(v)
		}
		if limit := authorizeParamCaps[name]; n > limit {
			return errAuthorizeForm(fmt.Sprintf("its parameter %s is %d bytes long, and Keyward accepts at most %d", name, n, limit))
		}
	}
	if total > maxAuthorizeFormBytes {
		return errAuthorizeForm(fmt.Sprintf("its parameters are %d bytes long together, and Keyward accepts at most %d", total, maxAuthorizeFormBytes))
	}
	return nil
}

// keepAuthorizeParams deletes from form every parameter Keyward does not
// keep. Call it after fosite has validated the request: fosite must still
// see (and refuse) parameters such as request or registration.
func keepAuthorizeParams(form url.Values) {
	for k := range form {
		if _, ok := authorizeParamCaps[k]; !ok {
			delete(form, k)
		}
	}
}

// errAuthorizeForm refuses an /authorize form; why says what is wrong
// with it ("it names the parameter nonce more than once").
func errAuthorizeForm(why string) *Refusal {
	return &Refusal{Kind: RefusedAuthorizeForm, Detail: why}
}
