package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// ErrGraph: Microsoft Graph could not list the person's groups after a
// group overage (network, refused token, unusable answer).
var ErrGraph = errors.New("microsoft graph did not list the groups")

// maxGraphBody bounds a getMemberObjects answer (up to 11,000 ids).
const maxGraphBody = 4 << 20

// checkTenant checks an Azure AD ID token's tenant (claims are the
// verified ID token's): with a templated issuer, iss must be the template
// with the token's own tid (an invalid token otherwise); and tid must be in
// Tenants when that is set (a *NotAllowedError otherwise).
func (c Config) checkTenant(claims map[string]any) error {
	if c.Profile != ProfileAzureAD {
		return nil
	}
	tid, _ := claims["tid"].(string)
	if templated(c.Issuer) {
		if !tenantPattern.MatchString(tid) {
			return fmt.Errorf("federation: verify id token: %w: tid is missing or malformed", ErrInvalidIDToken)
		}
		iss, _ := claims["iss"].(string)
		if iss != strings.Replace(c.Issuer, TenantPlaceholder, tid, 1) {
			return fmt.Errorf("federation: verify id token: %w: iss %q is not the issuer of tenant %q", ErrInvalidIDToken, clean(iss, 100), tid)
		}
	}
	if len(c.Tenants) > 0 && !slices.Contains(c.Tenants, tid) {
		return c.refusal("", "tenants", fmt.Sprintf("tenant %q is not listed", clean(tid, 64)),
			"Your organization's directory is not one that may sign in through "+c.Name+". Sign in with an account of an allowed organization, or ask your administrator.")
	}
	return nil
}

// overage reports whether the ID token says its groups did not fit and
// must be fetched (Azure AD's _claim_names/_claim_sources, or hasgroups).
func overage(claims map[string]any) bool {
	if names, ok := claims["_claim_names"].(map[string]any); ok {
		if _, ok := names["groups"]; ok {
			return true
		}
	}
	has, _ := claims["hasgroups"].(bool)
	return has
}

// overageRefusal is the refusal of a group overage Keyward cannot or may
// not resolve.
func (c Config) overageRefusal(id Identity, reason string) *NotAllowedError {
	return c.refusal(id.Subject, "groups_overage", reason,
		account(id)+" is a member of too many groups for "+c.Name+" to list them in the sign-in. Ask your administrator to assign fewer groups to the app, or to let Keyward read them from Microsoft Graph.")
}

// graphGroups lists the groups (object ids) of the person whose upstream
// access token is accessToken: POST {GraphURL}/v1.0/me/getMemberObjects.
// Errors wrap ErrGraph and never hold the token or the answer's body.
func (u *Upstream) graphGroups(ctx context.Context, accessToken string) ([]string, error) {
	const op = "federation: read groups from microsoft graph"
	if accessToken == "" {
		return nil, fmt.Errorf("%s: %w: the token response has no access token", op, ErrGraph)
	}
	body, _ := json.Marshal(map[string]bool{"securityEnabledOnly": false})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.GraphURL+"/v1.0/me/getMemberObjects", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, ErrGraph, err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, ErrGraph, redact(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxGraphBody))
		return nil, fmt.Errorf("%s: %w: status %s", op, ErrGraph, resp.Status)
	}
	var out struct {
		Value []string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxGraphBody)).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: %w: decode the answer: %w", op, ErrGraph, redact(err))
	}
	if out.Value == nil {
		return nil, fmt.Errorf("%s: %w: the answer has no value list", op, ErrGraph)
	}
	return out.Value, nil
}
