package broker

import (
	"strings"
	"testing"
)

// TestClientRegistryValidatesURIs: the broker refuses the URIs check-config
// refuses (one rule, Client.Validate), so a client assembled in code gets
// the same answer, with the same field path.
func TestClientRegistryValidatesURIs(t *testing.T) {
	_, err := newClientRegistry([]Client{
		{ID: "web", Public: true, RedirectURIs: []string{"https://app.example.com/cb", "javascript:alert(1)"}},
		{ID: "cli", Public: true, ApplicationType: ApplicationNative, RedirectURIs: []string{"com.example.cli:/cb", "http://127.0.0.1/cb"}},
		{ID: "spa", Public: true, RedirectURIs: []string{"https://*.example.com/cb"}, BackchannelLogoutURI: "http://app.example.com/bc"},
	})
	var got []string
	for _, line := range strings.Split(err.Error(), "\n") {
		got = append(got, line[:strings.Index(line, ":")])
	}
	want := "clients[0].redirectURIs[1] clients[2].redirectURIs[0] clients[2].backchannelLogoutURI"
	if strings.Join(got, " ") != want {
		t.Errorf("newClientRegistry() = %v\nproblems at %v, want %s", err, got, want)
	}
}
