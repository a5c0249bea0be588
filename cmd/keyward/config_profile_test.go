package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleTrustEmail(t *testing.T) {
	// The commented-out trustEmail of examples/keyward.yaml, uncommented,
	// parses, validates and reaches the upstream config.
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const line = "    trustEmail: true\n"
	text := string(data)
	if !strings.Contains(text, "\n    # trustEmail: true\n") {
		t.Fatalf("examples/keyward.yaml lacks the commented-out line %q", line)
	}
	text = strings.Replace(text, "\n    # trustEmail: true\n", "\n"+line, 1)
	env := map[string]string{"KEYWARD_GOOGLE_CLIENT_SECRET": "g"}
	c, err := parseConfig([]byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("parse the uncommented example: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if !c.Upstreams[0].TrustEmail || c.Upstreams[1].TrustEmail {
		t.Errorf("trustEmail of the upstreams = %v, %v; want true for corp only", c.Upstreams[0].TrustEmail, c.Upstreams[1].TrustEmail)
	}
}
