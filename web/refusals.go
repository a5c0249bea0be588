package web

import (
	"net/http"

	"github.com/keyward/keyward/broker"
)

// The pages of a refused browser flow: broker says why (a
// broker.RefusalKind and the facts the page may name), web decides the
// status, the title and the wording here, in one place.

// refusalPage is the error page of r (without its request id).
func refusalPage(r *broker.Refusal) errorPageData {
	const (
		tellAdmin      = " Return to the application; if this keeps happening, tell its administrator."
		signInAgain    = " Return to the application and sign in again."
		notSignedOut   = " You have not been signed out." + tellAdmin
		invalidSignIn  = "Invalid sign-in request"
		invalidSignOut = "Invalid sign-out request"
	)
	page := func(status int, title, message string) errorPageData {
		return errorPageData{Status: status, Title: title, Message: message}
	}
	switch r.Kind {
	case broker.RefusedAuthorizeForm:
		return page(http.StatusBadRequest, invalidSignIn,
			"The application sent a sign-in request that Keyward does not accept: "+r.Detail+". Nothing was stored."+tellAdmin)
	case broker.RefusedUnknownClient:
		return page(http.StatusBadRequest, invalidSignIn,
			"The application that sent you here is not registered with Keyward (unknown client_id)."+tellAdmin)
	case broker.RefusedUnregisteredRedirect:
		return page(http.StatusBadRequest, invalidSignIn,
			"The application asked to return you to an address it has not registered (redirect_uri)."+tellAdmin)
	case broker.RefusedNoRedirectURI:
		return page(http.StatusBadRequest, invalidSignIn,
			"The application's sign-in request has no redirect_uri, so Keyward cannot know where to return you (OpenID Connect requires it)."+tellAdmin)
	case broker.RefusedInvalidAuthorize:
		if r.Detail == "" {
			return page(http.StatusBadRequest, invalidSignIn, "The application sent an invalid sign-in request."+tellAdmin)
		}
		return page(http.StatusBadRequest, invalidSignIn, "The application sent an invalid sign-in request: "+r.Detail+tellAdmin)
	case broker.RefusedAuthorizeStale:
		return page(http.StatusBadRequest, invalidSignIn, "The application's sign-in request is no longer valid."+signInAgain)
	case broker.RefusedAttemptExpired:
		return page(http.StatusBadRequest, "This sign-in has expired", "The sign-in link has expired or was already used."+signInAgain)
	case broker.RefusedOtherBrowser:
		return page(http.StatusBadRequest, "Sign-in started in another browser",
			"This sign-in was started in another browser or its cookie is gone."+signInAgain)
	case broker.RefusedUnknownUpstream:
		return page(http.StatusNotFound, "Unknown identity provider", "That identity provider is not configured here. Go back and choose another.")
	case broker.RefusedUpstreamGone:
		return page(http.StatusBadRequest, "Unknown identity provider", "The identity provider of this sign-in is no longer configured.")
	case broker.RefusedUpstreamUnavailable:
		msg := upstreamUnavailableReason(r.Upstream) + " Keyward cannot reach it and keeps trying; try again in a few minutes"
		if r.OtherUpstreams {
			msg += ", or go back and choose another way to sign in"
		}
		return page(http.StatusServiceUnavailable, "Sign-in temporarily unavailable", msg+".")
	case broker.RefusedNoCode:
		return page(http.StatusBadRequest, "Invalid answer from the identity provider", "The identity provider sent no authorization code.")
	case broker.RefusedWrongIssuer:
		return page(http.StatusBadRequest, "Sign-in answer from the wrong identity provider",
			"The answer that came back does not come from "+r.Upstream+", where this sign-in was sent, so Keyward did not use it. No session was created. Return to the application and sign in again; if this keeps happening, tell your administrator.")
	case broker.RefusedUpstreamFailed:
		return page(http.StatusBadGateway, "Sign-in could not be completed",
			"Keyward could not verify the answer of "+r.Upstream+". No session was created. Try again; if it keeps failing, tell your administrator.")
	case broker.RefusedNotAllowed:
		return page(http.StatusForbidden, "Access not allowed", r.Detail)
	case broker.RefusedAccessRemoved:
		// writeError adds the configured contact (PagesConfig).
		return page(http.StatusForbidden, "Access removed", "Your access has been removed. If you think this is a mistake, ask the administrator of the application you came from.")
	case broker.RefusedLoginLimited:
		msg := "Keyward received too many sign-in attempts from your network just now."
		if r.Limited != nil && r.Limited.Scope == broker.LimitGlobal {
			msg = "Keyward is receiving more sign-in attempts than it can take just now."
		}
		return page(http.StatusTooManyRequests, "Too many sign-in attempts", msg+" Wait a minute, then return to the application and sign in again.")
	case broker.RefusedStoreUnavailable:
		return page(http.StatusServiceUnavailable, "Temporarily unavailable",
			"Keyward cannot reach its database right now. Nothing was lost: wait a few seconds, then reload this page or return to the application and sign in again.")
	case broker.RefusedLogoutHint:
		return page(http.StatusBadRequest, invalidSignOut,
			"The application sent a sign-out request with an ID token Keyward did not issue (id_token_hint)."+notSignedOut)
	case broker.RefusedLogoutClientMismatch:
		return page(http.StatusBadRequest, invalidSignOut,
			"The sign-out request names another application (client_id) than its ID token (id_token_hint)."+notSignedOut)
	case broker.RefusedLogoutUnknownClient:
		return page(http.StatusBadRequest, invalidSignOut,
			"The application that sent you here is not registered with Keyward (unknown client_id)."+notSignedOut)
	case broker.RefusedLogoutNoClient:
		return page(http.StatusBadRequest, invalidSignOut,
			"The application asked to return you to an address without saying which application it is (client_id or id_token_hint)."+notSignedOut)
	case broker.RefusedLogoutUnregisteredRedirect:
		return page(http.StatusBadRequest, invalidSignOut,
			"The application asked to return you to an address it has not registered (post_logout_redirect_uri)."+notSignedOut)
	case broker.RefusedLogoutBadRedirect:
		return page(http.StatusBadRequest, invalidSignOut, "The application's registered sign-out address is not a valid URL."+notSignedOut)
	}
	return serverErrorPage()
}

// serverErrorPage is the page of an unexpected failure, whose details are
// only logged under the request id.
func serverErrorPage() errorPageData {
	return errorPageData{
		Status:  http.StatusInternalServerError,
		Title:   "Something went wrong",
		Message: "Keyward could not finish this request. Try again in a moment; if it keeps failing, give your administrator the reference below.",
	}
}

// upstreamUnavailableReason is the text about an upstream that cannot take
// sign-ins now, on the chooser and on the refusal page.
func upstreamUnavailableReason(name string) string {
	return name + " sign-in is temporarily unavailable."
}
