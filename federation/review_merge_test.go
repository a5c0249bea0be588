package federation

import "testing"

// Security review of the email rule (issue 11, Medium 2): merge keeps an
// email and its verification from one document only when the ID token has
// an email. An ID token with email_verified but no email (Keycloak's
// "email verified" and "email" mappers are toggled for the ID token
// separately) lends its true to userinfo's address, even where userinfo
// itself says that address is not verified.
func TestReviewMergeIDTokenVerificationWithoutEmail(t *testing.T) {
	m := ClaimMapping{}.withDefaults(ProfileGeneric.Preset().Claims)
	merged := merge(
		map[string]any{"sub": "s", "email_verified": true},
		map[string]any{"sub": "s", "email": "someone-else@corp.example", "email_verified": false},
		m)
	got, err := m.identity(merged, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.EmailVerified {
		t.Errorf("identity(merge()) = %q verified, want unverified: userinfo says email_verified false for it, and the ID token names no address", got.Email)
	}
}
