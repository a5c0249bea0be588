package federation

import (
	"errors"
	"fmt"
	"strings"
)

// ErrIssuerMismatch: the authorization response's iss parameter (RFC 9207)
// names another issuer than the upstream the login was sent to, or is
// missing although the upstream's discovery says it sends one. The code
// in that response must not be redeemed: it may be another provider's
// (a mix-up attack, RFC 9207 §1).
var ErrIssuerMismatch = errors.New("authorization response issuer mismatch")

// CheckAuthorizationResponseIssuer checks the iss parameter of an
// authorization response (success or error) that came back for a login
// sent to u. RFC 9207 §2.4
//
//   - iss present: it must equal the upstream's issuer exactly; with a
//     templated Azure AD issuer, it must be the issuer of one tenant in
//     Config.Tenants (the check of the ID token's iss and tid, azure.go).
//   - iss absent (""): refused when discovery has
//     authorization_response_iss_parameter_supported true, accepted
//     otherwise.
//
// Errors wrap ErrIssuerMismatch; a tenant outside Config.Tenants is a
// *NotAllowedError instead, as at Exchange. It does no I/O.
func (u *Upstream) CheckAuthorizationResponseIssuer(iss string) error {
	const op = "federation: check authorization response iss"
	if iss == "" {
		var meta struct {
			Supported bool `json:"authorization_response_iss_parameter_supported"`
		}
		if err := u.provider.Claims(&meta); err != nil {
			return fmt.Errorf("%s: read discovery: %w", op, err)
		}
		if meta.Supported {
			return fmt.Errorf("%s: %w: no iss, but discovery of upstream %q says it sends one", op, ErrIssuerMismatch, u.cfg.ID)
		}
		return nil
	}
	if !templated(u.cfg.Issuer) {
		if iss != u.cfg.Issuer {
			return fmt.Errorf("%s: %w: iss %q is not the issuer of upstream %q", op, ErrIssuerMismatch, clean(iss, 100), u.cfg.ID)
		}
		return nil
	}
	prefix, suffix, _ := strings.Cut(u.cfg.Issuer, TenantPlaceholder)
	tid, ok := strings.CutPrefix(iss, prefix)
	if ok {
		tid, ok = strings.CutSuffix(tid, suffix)
	}
	if !ok {
		return fmt.Errorf("%s: %w: iss %q does not fit the issuer template of upstream %q", op, ErrIssuerMismatch, clean(iss, 100), u.cfg.ID)
	}
	err := u.cfg.checkTenant(map[string]any{"iss": iss, "tid": tid})
	if na := (*NotAllowedError)(nil); errors.As(err, &na) {
		return na
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, ErrIssuerMismatch, err)
	}
	return nil
}
