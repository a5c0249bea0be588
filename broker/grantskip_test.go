package broker

import (
	"context"
	"net/url"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// TestUnhandledGrantSkipper: a token endpoint handler that cannot handle
// the grant is not asked to populate the answer, and the answer is the one
// NewAccessResponse skips (fosite.ErrUnknownRequest). The flows through
// real HTTP (test/e2e) cover the handlers that do handle their grant.
func TestUnhandledGrantSkipper(t *testing.T) {
	fc := &fosite.Config{}
	cc := &oauth2.ClientCredentialsGrantHandler{Config: fc}
	fc.TokenEndpointHandlers = fosite.TokenEndpointHandlers{cc}
	skipUnhandledGrants(fc)
	h := fc.TokenEndpointHandlers[0]
	if _, ok := h.(unhandledGrantSkipper); !ok {
		t.Fatalf("handler after skipUnhandledGrants = %T, want unhandledGrantSkipper", h)
	}

	refresh := fosite.NewAccessRequest(newSession())
	refresh.GrantTypes = fosite.Arguments{"refresh_token"}
	refresh.Form = url.Values{}
	err := h.PopulateTokenEndpointResponse(context.Background(), refresh, fosite.NewAccessResponse())
	if err != fosite.ErrUnknownRequest { //nolint:errorlint // the bare sentinel, no stack
		t.Errorf("populate for another grant = %v, want the bare fosite.ErrUnknownRequest", err)
	}

}
