package broker

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/ory/fosite"
)

// The error_description sentences of Keyward's own OAuth answers, in one
// place: the error sentinels (*Error, one per code) with their generic
// descriptions, the hints fosite writes into its error redirects and JSON
// for Keyward's decisions, and the JSON errors of Keyward's own endpoints.
// Each is fixed public text for the client's developer; it never holds a
// token, a secret or a cause, which are only logged. The pages a person
// sees are web's (web/refusals.go).

// The error sentinels, one per code Keyward returns itself.
var (
	ErrInvalidRequest         = &Error{Code: "invalid_request", Description: "The request is missing a parameter or is malformed."}
	ErrUnauthorizedClient     = &Error{Code: "unauthorized_client", Description: "The client may not use this grant or response type."}
	ErrAccessDenied           = &Error{Code: "access_denied", Description: "The request was denied."}
	ErrUnsupportedGrantType   = &Error{Code: "unsupported_grant_type", Description: "The grant type is not supported."}
	ErrInvalidGrant           = &Error{Code: "invalid_grant", Description: "The grant is invalid, expired or revoked."}
	ErrInvalidClient          = &Error{Code: "invalid_client", Description: "Client authentication failed.", Status: 401}
	ErrLoginRequired          = &Error{Code: "login_required", Description: "The person must sign in."}
	ErrServerError            = &Error{Code: "server_error", Description: "The server met an unexpected condition.", Status: 500}
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Description: "The server cannot handle the request now; try again later.", Status: 503}
)

// ErrFeedUnauthorized: the caller of the revocation feed is not a
// configured reader, or its secret is wrong (HTTP 401).
var ErrFeedUnauthorized = &Error{Code: "invalid_client", Description: "Client authentication failed; only configured revocation-feed readers may read it.", Status: 401}

// errInvalidTarget is RFC 8693 §2.2.2's invalid_target; fosite has none.
var errInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested audience or resource is not allowed.",
	CodeField:        400,
}

// The hints and descriptions of Keyward's decisions, by endpoint.
const (
	// /authorize (error redirects to the client)
	descPKCERequired    = "PKCE with code_challenge_method=S256 is required."
	descMaxAge          = "max_age must be a non-negative integer."
	descUpstreamDenied  = "The identity provider did not sign the person in."
	descNoConsentScreen = "Keyward has no consent screen: the client's registration is the consent. Send no prompt=consent (Dex's oidc connector: promptType: \"\")."

	// /token
	descTokenBodyUnparsable = "The request body could not be parsed."
	descAccessRemoved       = "Access has been removed."
	descCodeSessionEnded    = "The sign-in session this code was issued in has ended."
	descRecheckSessionEnded = "The sign-in session has ended and the identity provider must vouch for this person again: sign in again."
	descUpstreamGone        = "The identity provider no longer accepts this person."
	descUnvouched           = "The identity provider has not confirmed this person for too long: sign in again."
	descRevokedWhileIssuing = "The grant was revoked while the tokens were being issued."
	descRefreshRaced        = "The refresh token was used by several requests at once; all tokens of its grant are now revoked."
	descCodeRaced           = "The authorization code was redeemed by another request at the same time; the tokens issued for it are revoked."

	// token exchange (RFC 8693)
	descExchangeNotAllowed        = "The client may not use the token-exchange grant."
	descExchangeNoSubject         = "subject_token and subject_token_type are required."
	descExchangeRequestedType     = "requested_token_type must be access_token or jwt."
	descExchangeNotIssuedToClient = "The subject token was not issued to this client (its aud names neither the client nor one of its audiences)."
	descExchangePublicClient      = "A public client may exchange only tokens whose trust rule or identity provider allows public clients."
	descExchangeAccessRemoved     = "Access has been removed for this subject."
	descExchangeNotJWT            = "The subject token is not a JWT."
	descExchangeKeywardType       = "A Keyward token is exchanged as subject_token_type access_token."
	descExchangeExternalType      = "An external token is exchanged as subject_token_type jwt or id_token."
	descExchangeNativeNotAccepted = "The ID token is not for a native app this identity provider accepts (nativeClientIDs)."
	descExchangeUntrusted         = "The subject token's issuer is not trusted."
	descExchangeIssuerUnavailable = "The subject token's issuer cannot be reached; try again later."
	descExchangeInvalid           = "The subject token is invalid, expired or not trusted."
	descExchangeNoJTI             = "The subject token has no jti, but its trust rule allows single use only."
	descTokenTooLarge             = "The token is too large."
	descTokenInvalid              = "The token is invalid or expired."
	descTokenNotAccessToken       = "The token is not an access token."
	descTokenRevoked              = "The token has been revoked or has expired."
	descTokenSessionEnded         = "The sign-in session the token was issued in has ended."
	descTokenAccessRemoved        = "Access has been removed for the token's subject."
	descActorTypeWithoutToken     = "actor_token_type without actor_token."
	descActorType                 = "actor_token_type must be access_token or jwt."
	descActorInvalid              = "The actor token is invalid, expired or revoked, its subject's access has been removed, or its session has ended."
	descActorNotAllowed           = "The actor may not act through this client (mayAct)."
	descExchangeNoAudience        = "No audience is allowed for this exchange."
	descExchangeReplayed          = "The subject token was already exchanged (single use)."
	descNativeUnavailable         = "The identity provider cannot be reached; try again later."
	descNativeInvalid             = "The ID token is invalid, expired or not issued to a native app of this identity provider."
	descExchangeAudienceFmt       = "The audience %q is not allowed."
	descExchangeScopeFmt          = "The scope %q is not allowed for this exchange."

	// /introspect
	descIntrospectionBodyUnparsable = "The request body could not be parsed as a form."
	descIntrospectionBearer         = "An access token is not a credential for introspection: authenticate as a client with HTTP Basic."
	descIntrospectionNoClient       = "Introspection needs client authentication with HTTP Basic (client_secret_basic)."
	descIntrospectionClientFailed   = "Client authentication failed: an unknown client, a public client or a wrong secret."

	// /userinfo
	descUserInfoNoToken      = "An access token is required."
	descUserInfoInvalidToken = "The access token is invalid, expired or revoked."
	descUserInfoNoOpenID     = "The access token was not granted the openid scope."

	// /backchannel_logout/{upstream}
	descUnknownLogoutUpstream = "No upstream has that id."
	descInvalidLogoutToken    = "The logout token is missing or invalid."
	descSidOnlyLogout         = "The logout token has no sub; Keyward ends upstream sessions by subject."
	descLogoutTokenNoJTI      = "The logout token has no jti."
	descLogoutTokenReplayed   = "The logout token was already used (jti)."
	descLogoutBodyNotForm     = "The body must be a form."
	descLogoutTokenCount      = "Send exactly one logout_token."

	// /revocations
	descFeedCursor           = "after must be a non-negative sequence number."
	descFeedCursorNotInteger = "after must be a non-negative integer."
)

// Limits at /token (tokenlimit.go; web sheds the token class with
// WriteOverloaded).
const (
	descOverloaded             = "Keyward is answering as many token requests as it can just now and did not start on this one; retry after the Retry-After seconds."
	descTokenClientLimited     = "This client is sending token requests faster than its limit (limits.clientTokenRequestsPerSecond); retry after the Retry-After seconds."
	descTokenFailuresLimited   = "Too many failed client authentications for this client_id from this address; retry after the Retry-After seconds."
	descTokenAddressFailLimits = "Too many failed client authentications from this address; retry after the Retry-After seconds."
)

// descTokenRateLimited is the error_description of a refusal by scope.
func descTokenRateLimited(scope string) string {
	switch scope {
	case TokenLimitClientFailures:
		return descTokenFailuresLimited
	case TokenLimitAddressFailures:
		return descTokenAddressFailLimits
	}
	return descTokenClientLimited
}

// Errors web answers before the broker sees a request: a back-channel
// logout whose body is not a form or does not hold exactly one
// logout_token, and a revocation-feed cursor that is not an integer.
var (
	ErrLogoutBodyNotForm = ErrInvalidRequest.WithDescription(descLogoutBodyNotForm)
	ErrLogoutTokenCount  = ErrInvalidRequest.WithDescription(descLogoutTokenCount)
	ErrFeedCursor        = ErrInvalidRequest.WithDescription(descFeedCursorNotInteger)
)

// The /token refusals whose cause fosite decides, in Keyward's words.
const (
	descCodeUnknown        = "The authorization code is unknown."
	descCodeExpired        = "The authorization code has expired."
	descCodeReused         = "The authorization code was already used; the tokens issued for it are revoked."
	descCodeOtherClient    = "The authorization code was issued to another client."
	descPKCEMismatch       = "The code_verifier does not match the code_challenge of the authorization request."
	descPKCEMissing        = "The code_verifier is missing or malformed (43 to 128 characters of [A-Za-z0-9-._~])."
	descRedirectMismatch   = "redirect_uri does not match the one of the authorization request."
	descRefreshUnknown     = "The refresh token is unknown: it was never issued, or it was revoked (sign-out, an administrator, or the person's access removed)."
	descRefreshReused      = "The refresh token was already used; all tokens of its grant are now revoked."
	descRefreshExpired     = "The refresh token has expired."
	descRefreshOtherClient = "The refresh token was issued to another client."
	// One sentence for both, so that the answer does not tell which
	// client_ids exist; the log tells them apart (client_auth).
	descClientAuthFailed    = "Client authentication failed: unknown client_id or wrong client secret."
	descClientAuthMethod    = "Client authentication failed: the client does not use this authentication method."
	descNoClientCredentials = "Client credentials are missing or malformed."
	descGrantNotAllowedFmt  = "The client may not use the grant type %s."
	descUnsupportedGrantFmt = "The grant type %s is not supported."
	descAudienceFmt         = "The client may not request the audience %s."
	descScopeFmt            = "The client may not request the scope %s."
)

// Client-authentication failures Keyward tells apart in its log.
var (
	errUnknownClient = errors.New("unknown client")
	errWrongSecret   = errors.New("wrong client secret")
)

// fositeHintWords is Keyward's sentence for a fixed hint of fosite's.
var fositeHintWords = map[string]string{
	"The authorization code has already been used.":                                                      descCodeReused,
	"The OAuth 2.0 Client ID from this request does not match the one from the authorize request.":       descCodeOtherClient,
	"The PKCE code challenge did not match the code verifier.":                                           descPKCEMismatch,
	"The PKCE code verifier must be at least 43 characters.":                                             descPKCEMissing,
	"The PKCE code verifier can not be longer than 128 characters.":                                      descPKCEMissing,
	"The PKCE code verifier must only contain [a-Z], [0-9], '-', '.', '_', '~'.":                         descPKCEMissing,
	"The \"redirect_uri\" from this request does not match the one from the authorize request.":          descRedirectMismatch,
	"The refresh token was already used.":                                                                descRefreshReused,
	"The refresh token is malformed or not valid.":                                                       descRefreshUnknown,
	"The refresh token expired.":                                                                         descRefreshExpired,
	"The OAuth 2.0 Client ID from this request does not match the ID during the initial token issuance.": descRefreshOtherClient,
	"Client credentials missing or malformed in both HTTP Authorization header and HTTP POST body.":      descNoClientCredentials,
}

// fositeHintPatterns is Keyward's sentence for a hint of fosite's that
// quotes a value: the value is kept, the rest is Keyward's.
var fositeHintPatterns = []struct {
	re  *regexp.Regexp
	fmt string
}{
	{regexp.MustCompile(`^Requested audience ["'](.*)["'] has not been whitelisted by the OAuth 2\.0 Client\.$`), descAudienceFmt},
	{regexp.MustCompile(`^The OAuth 2\.0 Client is not allowed to request scope '(.*)'\.$`), descScopeFmt},
	{regexp.MustCompile(`^The OAuth 2\.0 Client is not allowed to use authorization grant ["'](.*)["']\.$`), descGrantNotAllowedFmt},
	{regexp.MustCompile(`^The OAuth 2\.0 Client supports client authentication method '.*', but method '.*' was requested\.`), descClientAuthMethod},
}

// tokenDescription returns err as the error fosite writes at /token, with
// error_description Keyward's one short sentence instead of fosite's
// generic description followed by its hint: the sentence for the cause
// where Keyward can tell it, else the code's generic sentence. The code,
// the status and the wrapped cause (for the log) are kept.
func tokenDescription(err error) error {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		return err
	}
	out := &fosite.RFC6749Error{
		ErrorField:       rfc.ErrorField,
		CodeField:        rfc.CodeField,
		DescriptionField: describeFositeError(err, rfc),
	}
	return out.WithWrap(err)
}

func describeFositeError(err error, rfc *fosite.RFC6749Error) string {
	hint := rfc.HintField
	if errors.Is(err, errUnknownClient) || errors.Is(err, errWrongSecret) {
		return descClientAuthFailed
	}
	if errors.Is(err, errGrantExpired) && rfc.ErrorField == fosite.ErrInvalidGrant.ErrorField {
		if fositeHintWords[hint] == descRefreshUnknown {
			return descRefreshExpired
		}
		return descCodeExpired
	}
	if d, ok := fositeHintWords[hint]; ok {
		return d
	}
	for _, p := range fositeHintPatterns {
		if m := p.re.FindStringSubmatch(hint); m != nil {
			if len(m) > 1 {
				return fmt.Sprintf(p.fmt, m[1])
			}
			return p.fmt
		}
	}
	if rfc.ErrorField == fosite.ErrInvalidGrant.ErrorField && hint == "" {
		return descCodeUnknown // fosite's only hintless invalid_grant: a code not found
	}
	if hint != "" {
		return hint // Keyward's own (desc… constants), or a rare fosite one
	}
	for _, e := range []*Error{ErrInvalidRequest, ErrUnauthorizedClient, ErrAccessDenied, ErrUnsupportedGrantType,
		ErrInvalidGrant, ErrInvalidClient, ErrServerError, ErrTemporarilyUnavailable} {
		if e.Code == rfc.ErrorField {
			return e.Description
		}
	}
	return rfc.DescriptionField
}
