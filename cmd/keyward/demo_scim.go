package main

// This file is the demo's SCIM provisioning: the demo identity provider's
// people are provisioned to Keyward over SCIM 2.0 at start, as an IdP with
// provisioning on would, so the banner can show a deactivation by SCIM.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/fakeidp"
	"github.com/keyward/keyward/web/httpserver"
)

// demoSCIMTokenFile is the name of the SCIM token's file in the data folder.
const demoSCIMTokenFile = "scim-token"

// demoSCIMDeactivate is the PATCH body an IdP sends to deactivate a user
// (Okta's, docs/provisioning.md).
const demoSCIMDeactivate = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`

// demoSCIMBase is the SCIM base URL of the demo upstream.
func demoSCIMBase(brokerURL string) string { return brokerURL + "/scim/v2/demo" }

// demoProvision creates a SCIM User for each demo person (userName the
// email, externalId the IdP's sub, which links it to the person who signs
// in) through Keyward's SCIM endpoint and returns their SCIM ids by
// username.
func demoProvision(ctx context.Context, brokerURL, token string) (map[string]string, error) {
	client := &http.Client{Timeout: httpserver.UpstreamTimeout}
	do := func(method, url string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, raw, err
	}
	ids := map[string]string{}
	for _, u := range fakeidp.DemoUsers() {
		body, _ := json.Marshal(map[string]any{
			"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
			"userName":    u.Email,
			"externalId":  u.Subject,
			"displayName": u.Name,
			"emails":      []map[string]any{{"value": u.Email, "primary": true, "type": "work"}},
			"active":      true,
		})
		status, raw, err := do(http.MethodPost, demoSCIMBase(brokerURL)+"/Users", body)
		if err != nil {
			return nil, fmt.Errorf("provision %s over SCIM: %w", u.Username, err)
		}
		if status == http.StatusConflict {
			// A data folder kept from an earlier run (--data-dir) has
			// the user already: look it up, as an IdP does.
			filter := url.QueryEscape(fmt.Sprintf("userName eq %q", u.Email))
			if status, raw, err = do(http.MethodGet, demoSCIMBase(brokerURL)+"/Users?filter="+filter, nil); err != nil {
				return nil, fmt.Errorf("look up %s over SCIM: %w", u.Username, err)
			}
			var list struct {
				Resources []json.RawMessage `json:"Resources"`
			}
			if status != http.StatusOK || json.Unmarshal(raw, &list) != nil || len(list.Resources) != 1 {
				return nil, fmt.Errorf("look up %s over SCIM: %d %.300s", u.Username, status, raw)
			}
			raw, status = list.Resources[0], http.StatusCreated
		}
		var created struct {
			ID string `json:"id"`
		}
		if status != http.StatusCreated || json.Unmarshal(raw, &created) != nil || created.ID == "" {
			return nil, fmt.Errorf("provision %s over SCIM: %d %.300s", u.Username, status, raw)
		}
		ids[u.Username] = created.ID
	}
	return ids, nil
}

// demoSCIMConfig is the demo upstream's provisioning: the token in
// tokenFile (for the file) and token (read, as serve reads it).
func demoSCIMConfig(tokenFile, token string) (file, read []broker.SCIMConfig) {
	return []broker.SCIMConfig{{Upstream: "demo", TokenFile: tokenFile}},
		[]broker.SCIMConfig{{Upstream: "demo", Token: token}}
}
