package scim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/web/loopback"
)

// PathPrefix is where the service providers live: PathPrefix + upstream
// id is one upstream's SCIM base URL.
const PathPrefix = "/scim/v2/"

// MaxBody bounds a request body, as web's middleware bounds every body
// (64 KiB: a group PATCH of several hundred members).
const MaxBody = 64 << 10

// maxResults is the largest page a list answers (ServiceProviderConfig).
const maxResults = 200

// Config configures New.
type Config struct {
	Provisioning *broker.Provisioning
	// Issuer is Keyward's public base URL; the resources' locations are
	// under it.
	Issuer string
	Logger *slog.Logger
}

// Handler serves every upstream's service provider under PathPrefix.
type Handler struct {
	prov    *broker.Provisioning
	servers map[string]http.Handler
	log     *slog.Logger
}

// New builds one service provider per upstream with provisioning.
func New(cfg Config) (*Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{prov: cfg.Provisioning, servers: map[string]http.Handler{}, log: cfg.Logger.With("component", "scim")}
	for _, up := range cfg.Provisioning.Upstreams() {
		base := strings.TrimSuffix(cfg.Issuer, "/") + PathPrefix + up
		users := &userHandler{resources{prov: cfg.Provisioning, upstream: up, log: h.log}}
		groups := &groupHandler{resources{prov: cfg.Provisioning, upstream: up, log: h.log}}
		srv, err := scim.NewServer(&scim.ServerArgs{
			ServiceProviderConfig: &scim.ServiceProviderConfig{
				DocumentationURI: optional.NewString("https://github.com/keyward/keyward/blob/main/docs/provisioning.md"),
				AuthenticationSchemes: []scim.AuthenticationScheme{{
					Type:        scim.AuthenticationTypeOauthBearerToken,
					Name:        "Bearer token",
					Description: "The token configured in keyward.yaml's scim section for this upstream (tokenFile).",
					Primary:     true,
				}},
				MaxResults:       maxResults,
				SupportFiltering: true,
				SupportPatch:     true,
			},
			ResourceTypes: []scim.ResourceType{
				{
					ID:          optional.NewString("User"),
					Name:        "User",
					Endpoint:    "/Users",
					Description: optional.NewString("A person of upstream " + up),
					Schema:      schema.CoreUserSchema(),
					SchemaExtensions: []scim.SchemaExtension{
						{Schema: schema.ExtensionEnterpriseUser()},
					},
					Handler: users,
				},
				{
					ID:          optional.NewString("Group"),
					Name:        "Group",
					Endpoint:    "/Groups",
					Description: optional.NewString("A group of upstream " + up),
					Schema:      schema.CoreGroupSchema(),
					Handler:     groups,
				},
			},
		}, scim.WithBaseURL(base), scim.WithLogger(libLogger{h.log}))
		if err != nil {
			return nil, fmt.Errorf("scim service provider for %s: %w", up, err)
		}
		h.servers[up] = http.StripPrefix(PathPrefix+up, srv)
	}
	return h, nil
}

// ServeHTTP checks the transport, the upstream and the token, reads the
// body (bounded), smooths the known client quirks and hands the request to
// the upstream's service provider.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, PathPrefix), "/")
	srv, ok := h.servers[up]
	switch {
	case !secureTransport(r):
		writeError(w, http.StatusForbidden, "", "SCIM requires https: the bearer token must not travel in the clear (plain http is accepted from loopback only)")
		return
	case !ok:
		writeError(w, http.StatusNotFound, "", "No upstream with SCIM provisioning is called "+fmt.Sprintf("%q", up)+"; the URL is /scim/v2/{upstream id}")
		return
	}
	token, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ok, err := h.prov.Authenticate(r.Context(), up, strings.TrimSpace(token))
	if err != nil {
		h.log.WarnContext(r.Context(), "scim request failed: the tokens could not be read", "upstream", up, "err", err)
		writeError(w, http.StatusServiceUnavailable, "", "Keyward could not check the token; retry later")
		return
	}
	if !found || !ok {
		h.log.InfoContext(r.Context(), "scim request refused: wrong or missing bearer token", "upstream", up, "bearer", found)
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyward-scim", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "", "The bearer token is missing or is not this upstream's SCIM token")
		return
	}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("The request body is larger than %d bytes", mbe.Limit))
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalidSyntax", "The request body could not be read")
			return
		}
		if r.Method == http.MethodPatch {
			body = normalizePatch(body)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	srv.ServeHTTP(w, r)
}

// secureTransport: TLS here or at a proxy in front (X-Forwarded-Proto:
// https, the rule the security headers follow), or a loopback peer.
func secureTransport(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" ||
		(r.Header.Get("X-Forwarded-Proto") == "" && loopback.HostPort(r.RemoteAddr))
}

// writeError writes a SCIM error (RFC 7644 §3.12) outside the library.
func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	e := scimerrors.ScimError{Status: status, ScimType: scimerrors.ScimType(scimType), Detail: detail}
	b, _ := e.MarshalJSON()
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// libLogger hands the library's errors (a failed response write) to slog.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Error(args ...any) {
	l.log.Error("scim library error", "detail", fmt.Sprint(args...)) //nolint:sloglint // the library passes no context
}

// resources is what the User and Group handlers share.
type resources struct {
	prov     *broker.Provisioning
	upstream string
	log      *slog.Logger
}

// scimError turns a provisioning error into a SCIM error; an unexpected
// one is logged and answered without its text.
func (rs resources) scimError(ctx context.Context, err error) error {
	var inv *broker.SCIMInvalidError
	var ce *broker.SCIMConflictError
	var se scimerrors.ScimError
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &inv):
		return scimerrors.ScimError{Status: http.StatusBadRequest, ScimType: scimerrors.ScimType(inv.ScimType), Detail: inv.Detail}
	case errors.Is(err, broker.ErrSCIMNotFound):
		return scimerrors.ScimError{Status: http.StatusNotFound, Detail: "No resource has that id"}
	case errors.As(err, &ce):
		return scimerrors.ScimError{Status: http.StatusConflict, ScimType: scimerrors.ScimTypeUniqueness, Detail: ce.Detail}
	case errors.Is(err, store.ErrUnavailable):
		rs.log.WarnContext(ctx, "scim request failed: store unavailable", "upstream", rs.upstream, "err", err)
		return scimerrors.ScimError{Status: http.StatusServiceUnavailable, Detail: "Keyward's database is unavailable; retry later"}
	}
	rs.log.ErrorContext(ctx, "scim request failed", "upstream", rs.upstream, "err", err)
	return scimerrors.ScimError{Status: http.StatusInternalServerError, Detail: "Keyward could not complete the request; its log has the cause"}
}

// resource is a stored record as the library answers it.
func resource(r store.SCIMResource, attrs map[string]any) scim.Resource {
	created, modified := r.CreatedAt, r.UpdatedAt
	out := scim.Resource{
		ID:         r.ID,
		Attributes: attrs,
		Meta:       scim.Meta{Created: &created, LastModified: &modified, Version: fmt.Sprintf(`W/"%d"`, r.Version)},
	}
	if r.ExternalID != "" {
		out.ExternalID = optional.NewString(r.ExternalID)
	}
	return out
}
