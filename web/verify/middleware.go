package verify

import (
	"context"
	"net/http"
)

type claimsKey struct{}

// ClaimsFromContext returns the claims Middleware verified for this request.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// Middleware protects a Go handler. With nil rules every request needs a
// valid token; otherwise the first rule matching the request's Host, path and
// method decides, as in NewHandler (an anonymous rule passes without claims;
// no match, or a path Rules.Match refuses as ambiguous, is 403). Verified claims are available to the next handler through
// ClaimsFromContext. Failures are answered like NewHandler does, without a
// body.
func (v *Verifier) Middleware(rules Rules) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var rule *Rule
			if rules != nil {
				// EscapedPath keeps the request's own encoding (%2F, %2e…)
				// for Match to judge.
				var err error
				if rule, err = rules.Match(r.Host, r.URL.EscapedPath(), r.Method); err != nil {
					writeError(w, err)
					return
				}
				if rule.Allow == AllowAnonymous {
					next.ServeHTTP(w, r)
					return
				}
			}
			token, present := bearerToken(r.Header)
			if !present {
				writeError(w, errNoToken)
				return
			}
			c, err := v.Verify(r.Context(), token)
			if err == nil && rule != nil {
				err = rule.Authorize(c)
			}
			if err != nil {
				writeError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
		})
	}
}
