package broker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVerifiedEmailOnly(t *testing.T) {
	tests := []struct {
		name             string
		idc, atc         map[string]any
		wantIDC, wantATC map[string]any
	}{
		{
			name:    "verified: email_verified joins email in the access token",
			idc:     map[string]any{"sid": "s", "email": "a@example.com", "email_verified": true},
			atc:     map[string]any{"email": "a@example.com", "name": "A"},
			wantIDC: map[string]any{"sid": "s", "email": "a@example.com", "email_verified": true},
			wantATC: map[string]any{"email": "a@example.com", "email_verified": true, "name": "A"},
		},
		{
			name:    "verified, access token without email",
			idc:     map[string]any{"email": "a@example.com", "email_verified": true},
			atc:     map[string]any{"name": "A"},
			wantIDC: map[string]any{"email": "a@example.com", "email_verified": true},
			wantATC: map[string]any{"name": "A"},
		},
		{
			// A grant stored before the rule: email_verified false.
			name:    "unverified: removed from both",
			idc:     map[string]any{"sid": "s", "email": "a@example.com", "email_verified": false, "name": "A"},
			atc:     map[string]any{"email": "a@example.com", "email_verified": false, "name": "A"},
			wantIDC: map[string]any{"sid": "s", "name": "A"},
			wantATC: map[string]any{"name": "A"},
		},
		{
			name:    "email without email_verified: removed",
			idc:     map[string]any{"email": "a@example.com"},
			atc:     map[string]any{"email": "a@example.com"},
			wantIDC: map[string]any{},
			wantATC: map[string]any{},
		},
		{
			name:    "email_verified as a string is not verified",
			idc:     map[string]any{"email": "a@example.com", "email_verified": "true"},
			atc:     map[string]any{"email": "a@example.com"},
			wantIDC: map[string]any{},
			wantATC: map[string]any{},
		},
		{
			name:    "no email scope",
			idc:     map[string]any{"sid": "s"},
			atc:     map[string]any{"client_id": "app"},
			wantIDC: map[string]any{"sid": "s"},
			wantATC: map[string]any{"client_id": "app"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verifiedEmailOnly(tc.idc, tc.atc)
			if diff := cmp.Diff(tc.wantIDC, tc.idc); diff != "" {
				t.Errorf("verifiedEmailOnly() ID-token claims (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantATC, tc.atc); diff != "" {
				t.Errorf("verifiedEmailOnly() access-token claims (-want +got):\n%s", diff)
			}
		})
	}
}
