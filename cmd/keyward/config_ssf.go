package main

// The ssf section: OpenID Shared Signals streams per upstream
// (broker.SSFConfig is its type; web serves /ssf/{upstream}/events).

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/federation"
	"github.com/keyward/keyward/store"
	"github.com/keyward/keyward/web/httpserver"
)

// validateSSF checks each ssf entry, and that it names an upstream of the
// file, at most once.
func (c *Config) validateSSF(p *problems) {
	c.validatePerUpstream(p, "ssf", "has a stream already", len(c.SSF), func(i int) (string, error) {
		return c.SSF[i].Upstream, c.SSF[i].Validate()
	}, nil)
}

// readSSFTokens reads the ssf entries' token files into their Token.
func readSSFTokens(p *problems, c *Config) []broker.SSFConfig {
	var out []broker.SSFConfig
	for i, s := range c.SSF {
		path := fmt.Sprintf("ssf[%d].tokenFile", i)
		s.Token = readSecret(p, path, s.TokenFile, s.Token)
		if msg := broker.ValidateSCIMToken(s.Token); s.TokenFile != "" && s.Token != "" && msg != "" {
			p.Add(path, "%s: %s", s.TokenFile, msg)
		}
		s.TokenFile = ""
		if s.PollURL != "" {
			s.PollToken = readSecret(p, fmt.Sprintf("ssf[%d].pollTokenFile", i), s.PollTokenFile, s.PollToken)
			s.PollTokenFile = ""
		}
		out = append(out, s)
	}
	return out
}

// buildSignals is the Shared Signals receiver for the entries (nil when
// there are none). Each transmitter's key set is fetched on first use.
func buildSignals(b *broker.Broker, st store.Store, issuer string, entries []broker.SSFConfig, log *slog.Logger, transport http.RoundTripper) (*broker.Signals, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	client := &http.Client{Timeout: httpserver.UpstreamTimeout, Transport: transport}
	var streams []broker.SignalsStream
	for _, e := range entries {
		aud := e.Audience
		if aud == "" {
			aud = issuer
		}
		v := federation.NewSETVerifier(federation.SETConfig{
			Issuer: e.Issuer, JWKSURL: e.JWKSURL, Audience: aud, MaxAge: time.Duration(e.MaxAge), Client: client, Logger: log,
		})
		stream := broker.SignalsStream{Upstream: e.Upstream, Verifier: v, Token: e.Token, PollInterval: time.Duration(e.PollInterval)}
		if e.PollURL != "" {
			stream.Poller = &federation.SETPoller{URL: e.PollURL, Token: e.PollToken, Client: client}
		}
		streams = append(streams, stream)
	}
	s, err := b.NewSignals(broker.SignalsConfig{Store: st, Streams: streams, Logger: log})
	if err != nil {
		return nil, err
	}
	return s, nil
}
