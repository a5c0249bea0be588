package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// check-config on a verifier file, and verify --check on a broker file, name
// the command to use instead of listing every field as unknown.
func TestCheckNamesTheOtherCommand(t *testing.T) {
	verifyFile := filepath.Join("..", "..", "examples", "verify.yaml")
	brokerFile := filepath.Join("..", "..", "examples", "keyward.yaml")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"check-config", "-c", verifyFile}, verifyFile + ": this is the verifier's configuration (verify.yaml), not the broker's configuration (keyward.yaml): it has audience and rules and no upstreams or clients; check it with: keyward verify --check -c " + verifyFile + "\n"},
		{[]string{"verify", "--check", "-c", brokerFile}, brokerFile + ": this is the broker's configuration (keyward.yaml), not the verifier's configuration (verify.yaml): it has upstreams and clients and no audience or rules; check it with: keyward check-config -c " + brokerFile + "\n"},
	}
	for _, tt := range tests {
		out, code := runCLI(t, tt.args...)
		if code != exitFailure || !strings.HasPrefix(out, tt.want) || strings.Contains(out, "unknown field") {
			t.Errorf("keyward %s: code %d, output:\n%s\nwant it to start with:\n%s", strings.Join(tt.args, " "), code, out, tt.want)
		}
	}
}

// A file of the right kind with a stray key of the other kind is still
// checked field by field.
func TestCheckKindNeedsTheOtherKindsMarkers(t *testing.T) {
	if err := checkKind([]byte("issuer: x\nupstreams: []\nrules: []\n"), kindBroker); err != nil {
		t.Errorf("checkKind(broker file with rules) = %v, want nil", err)
	}
	if err := checkKind([]byte("issuer: x\nlisten: :1\n"), kindVerify); err != nil {
		t.Errorf("checkKind(file with only shared keys) = %v, want nil", err)
	}
	if err := checkKind([]byte("clients: []\n"), kindVerify); err == nil {
		t.Error("checkKind(broker file as verify) = nil, want a wrong-kind error")
	}
}
