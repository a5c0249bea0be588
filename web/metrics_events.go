package web

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The broker does not import Prometheus: it logs its auth events with an
// event attribute (broker/doc.go), and CountEvents turns those records into
// the series operators alert on. A label takes only values of a bounded
// set (configured client and upstream ids, OAuth error codes, known grant
// types); anything else counts as "other".

// eventMetrics are the series counted from log events.
type eventMetrics struct {
	tokensIssued   *prometheus.CounterVec // grant_type, client_id
	tokenRequests  *prometheus.CounterVec // grant_type, result
	tokenReuse     *prometheus.CounterVec // token
	signIns        *prometheus.CounterVec // upstream, result
	backchannelErr *prometheus.CounterVec // client_id
	storeErr       *prometheus.CounterVec // endpoint
}

// CountEvents returns a handler that counts the auth events of the records
// it sees into series registered with reg, then passes each record on to
// next when next is enabled for its level. Events are counted whatever the
// configured log level (an Info event counts under level: warn).
func CountEvents(reg prometheus.Registerer, next slog.Handler) slog.Handler {
	m := &eventMetrics{
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_tokens_issued_total",
			Help: "Token responses issued at /token, by grant type and client.",
		}, []string{"grant_type", "client_id"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_token_requests_total",
			Help: "Token requests answered at /token, by grant type and result: issued, or the OAuth error code (invalid_grant, invalid_client, …); store outages count in keyward_store_unavailable_total.",
		}, []string{"grant_type", "result"}),
		tokenReuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_token_reuse_detected_total",
			Help: "Replays of a used refresh token or authorization code (its grant is then revoked), by token: refresh_token or authorization_code.",
		}, []string{"token"}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_sign_ins_total",
			Help: "Sign-ins through an upstream, by upstream and result: succeeded or failed.",
		}, []string{"upstream", "result"}),
		backchannelErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_backchannel_logout_failures_total",
			Help: "Back-channel logout deliveries that a client refused, that failed after every retry, or that shutdown abandoned, by client.",
		}, []string{"client_id"}),
		storeErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_store_unavailable_total",
			Help: "Requests answered 503 because the store could not be reached, by endpoint.",
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.tokensIssued, m.tokenRequests, m.tokenReuse, m.signIns, m.backchannelErr, m.storeErr)
	}
	return &eventHandler{m: m, next: next}
}

// eventHandler is the slog.Handler CountEvents returns. attrs are the
// attributes bound with WithAttrs outside any group.
type eventHandler struct {
	m       *eventMetrics
	next    slog.Handler
	attrs   []slog.Attr
	grouped bool // WithGroup was called: later attributes are not top-level
}

func (h *eventHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || h.next.Enabled(ctx, level)
}

func (h *eventHandler) Handle(ctx context.Context, r slog.Record) error {
	h.count(r)
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *eventHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	if !h.grouped {
		c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	}
	return &c
}

func (h *eventHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.grouped = c.grouped || name != ""
	return &c
}

// count counts r if it carries an event.
func (h *eventHandler) count(r slog.Record) {
	var event string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			event = a.Value.String()
			return false
		}
		return true
	})
	if event == "" {
		return
	}
	attr := func(key string) string {
		v := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v = a.Value.String()
				return false
			}
			return true
		})
		if v == "" {
			for _, a := range h.attrs {
				if a.Key == key {
					v = a.Value.String()
				}
			}
		}
		return v
	}
	m := h.m
	switch event {
	case "token_issued":
		grant := grantLabel(attr("grant_type"))
		m.tokensIssued.WithLabelValues(grant, idLabel(attr("client_id"))).Inc()
		m.tokenRequests.WithLabelValues(grant, "issued").Inc()
	case "token_refused":
		m.tokenRequests.WithLabelValues(grantLabel(attr("grant_type")), codeLabel(attr("error"))).Inc()
		switch reused := attr("reused"); reused {
		case "refresh_token", "authorization_code":
			m.tokenReuse.WithLabelValues(reused).Inc()
		}
	case "login_succeeded":
		m.signIns.WithLabelValues(idLabel(attr("upstream")), "succeeded").Inc()
	case "login_failed":
		m.signIns.WithLabelValues(idLabel(attr("upstream")), "failed").Inc()
	case "backchannel_logout_failed":
		m.backchannelErr.WithLabelValues(idLabel(attr("client_id"))).Inc()
	case "store_unavailable":
		m.storeErr.WithLabelValues(codeLabel(attr("endpoint"))).Inc()
	}
}

// grantLabel is the grant_type label: a grant type Keyward serves, else
// "other" (unknown or several), or "none" when the request named none.
func grantLabel(g string) string {
	switch g {
	case "authorization_code", "refresh_token", "client_credentials",
		"urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:jwt-bearer":
		return g
	case "":
		return "none"
	}
	return "other"
}

// codeLabel keeps an OAuth error code or an endpoint name (lowercase
// letters and _, at most 40), else "other".
func codeLabel(c string) string {
	if c == "" || len(c) > 40 || strings.Trim(c, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return "other"
	}
	return c
}

// idLabel keeps a configured id (a client or an upstream: the broker logs
// only those under these keys), "none" when absent, and cuts it at 64 bytes.
func idLabel(id string) string {
	if id == "" {
		return "none"
	}
	if len(id) > 64 {
		return id[:64]
	}
	return id
}
