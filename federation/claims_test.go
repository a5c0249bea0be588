package federation

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestLookup(t *testing.T) {
	claims := map[string]any{
		"groups":                    []any{"a"},
		"https://example.com/roles": []any{"ns"},
		"cognito:groups":            []any{"cg"},
		"a.b":                       "top-level wins",
		"a":                         map[string]any{"b": "nested"},
		"realm_access":              map[string]any{"roles": []any{"r1"}},
		"resource_access":           map[string]any{"keyward": map[string]any{"roles": []any{"c1"}}},
		"flat":                      "x",
	}
	tests := []struct {
		path   string
		want   any
		wantOK bool
	}{
		{"groups", []any{"a"}, true},
		{"https://example.com/roles", []any{"ns"}, true},
		{"cognito:groups", []any{"cg"}, true},
		{"a.b", "top-level wins", true},
		{"realm_access.roles", []any{"r1"}, true},
		{"resource_access.keyward.roles", []any{"c1"}, true},
		{"resource_access.other.roles", nil, false},
		{"flat.x", nil, false},
		{"missing", nil, false},
		{"", nil, false},
	}
	for _, tc := range tests {
		got, ok := lookup(claims, tc.path)
		if ok != tc.wantOK || !cmp.Equal(tc.want, got) {
			t.Errorf("lookup(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestClaimMappingTable(t *testing.T) {
	base := map[string]any{"sub": "s1", "email": "a@example.com", "email_verified": true, "name": "A", "preferred_username": "alice"}
	with := func(extra map[string]any, drop ...string) map[string]any {
		c := map[string]any{}
		for k, v := range base {
			c[k] = v
		}
		for k, v := range extra {
			c[k] = v
		}
		for _, k := range drop {
			delete(c, k)
		}
		return c
	}
	tests := []struct {
		name          string
		profile       Profile
		mapping       ClaimMapping
		trustEmail    bool
		claims        map[string]any
		want          Identity
		wantKnown     bool
		wantNoSubject bool
	}{
		{
			name:      "defaults",
			claims:    with(map[string]any{"groups": []any{"staff"}}),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice", Groups: []string{"staff"}},
			wantKnown: true,
		},
		{
			name:   "email_verified missing is unknown",
			claims: with(nil, "email_verified"),
			want:   Identity{Subject: "s1", Email: "a@example.com", Name: "A", PreferredUsername: "alice"},
		},
		{
			name:      "email_verified false is known",
			claims:    with(map[string]any{"email_verified": false}),
			want:      Identity{Subject: "s1", Email: "a@example.com", Name: "A", PreferredUsername: "alice"},
			wantKnown: true,
		},
		{
			name:      "email_verified as string",
			claims:    with(map[string]any{"email_verified": "true"}),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice"},
			wantKnown: true,
		},
		{
			name:    "email fallbacks in order, only with @",
			profile: ProfileAzureAD,
			claims:  with(map[string]any{"upn": "not-an-address", "preferred_username": "a@corp.example"}, "email", "email_verified"),
			want:    Identity{Subject: "s1", Email: "a@corp.example", Name: "A", PreferredUsername: "a@corp.example"},
		},
		{
			name:    "upn first",
			profile: ProfileAzureAD,
			claims:  with(map[string]any{"upn": "upn@corp.example", "email_verified": true}, "email"),
			// The verification belongs to the email claim, not to upn.
			want: Identity{Subject: "s1", Email: "upn@corp.example", Name: "A", PreferredUsername: "alice"},
		},
		{
			name:       "trustEmail treats a missing email_verified as true",
			trustEmail: true,
			claims:     with(nil, "email_verified"),
			want:       Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice"},
			wantKnown:  true,
		},
		{
			name:       "trustEmail overrides email_verified false",
			trustEmail: true,
			claims:     with(map[string]any{"email_verified": false}),
			want:       Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice"},
			wantKnown:  true,
		},
		{
			name:       "trustEmail covers a fallback",
			profile:    ProfileAzureAD,
			trustEmail: true,
			claims:     with(map[string]any{"upn": "upn@corp.example"}, "email", "email_verified"),
			want:       Identity{Subject: "s1", Email: "upn@corp.example", EmailVerified: true, Name: "A", PreferredUsername: "alice"},
			wantKnown:  true,
		},
		{
			name:       "trustEmail without an email",
			trustEmail: true,
			claims:     with(nil, "email", "email_verified"),
			want:       Identity{Subject: "s1", Name: "A", PreferredUsername: "alice"},
		},
		{
			name:      "subject from oid",
			mapping:   ClaimMapping{Subject: "oid"},
			claims:    with(map[string]any{"oid": "object-1"}),
			want:      Identity{Subject: "object-1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice"},
			wantKnown: true,
		},
		{
			name:          "subject claim missing",
			mapping:       ClaimMapping{Subject: "oid"},
			claims:        with(nil),
			wantNoSubject: true,
		},
		{
			name:          "subject not a string",
			claims:        with(map[string]any{"sub": float64(7)}),
			wantNoSubject: true,
		},
		{
			name:    "preferred username fallback",
			mapping: ClaimMapping{PreferredUsernameFallbacks: []string{"nickname", "email"}},
			claims:  with(nil, "preferred_username", "email_verified"),
			want:    Identity{Subject: "s1", Email: "a@example.com", Name: "A", PreferredUsername: "a@example.com"},
		},
		{
			name:      "groups as one string",
			claims:    with(map[string]any{"groups": "admins"}),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice", Groups: []string{"admins"}},
			wantKnown: true,
		},
		{
			name:    "groups from several paths, merged, deduplicated, prefixed",
			mapping: ClaimMapping{Groups: []string{"realm_access.roles", "resource_access.keyward.roles"}, GroupsPrefix: "kc:"},
			claims: with(map[string]any{
				"realm_access":    map[string]any{"roles": []any{"admin", "user"}},
				"resource_access": map[string]any{"keyward": map[string]any{"roles": []any{"user", "editor", 3}}},
			}),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice", Groups: []string{"kc:admin", "kc:user", "kc:editor"}},
			wantKnown: true,
		},
		{
			name:      "groups path present but empty",
			claims:    with(map[string]any{"groups": []any{}}),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice", Groups: []string{}},
			wantKnown: true,
		},
		{
			name:      "cognito names",
			profile:   ProfileCognito,
			claims:    with(map[string]any{"cognito:groups": []any{"ops"}, "cognito:username": "alice-c"}, "preferred_username"),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice-c", Groups: []string{"ops"}},
			wantKnown: true,
		},
		{
			name:    "namespaced auth0 claims and copied claims",
			profile: ProfileAuth0,
			mapping: ClaimMapping{
				Groups: []string{"https://example.com/roles"},
				Claims: map[string]string{"department": "https://example.com/department", "level": "lvl", "mfa": "amr_ok", "obj": "o", "gone": "nothing"},
			},
			claims: with(map[string]any{
				"https://example.com/roles": []any{"viewer"}, "https://example.com/department": "research",
				"lvl": float64(3), "amr_ok": true, "o": map[string]any{"x": 1}, "groups": []any{"ignored"},
			}),
			want: Identity{
				Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice", Groups: []string{"viewer"},
				Extra: map[string]string{"department": "research", "level": "3", "mfa": "true"},
			},
			wantKnown: true,
		},
		{
			name:      "google has no groups",
			profile:   ProfileGoogle,
			claims:    with(map[string]any{"groups": []any{"x"}}),
			want:      Identity{Subject: "s1", Email: "a@example.com", EmailVerified: true, Name: "A", PreferredUsername: "alice"},
			wantKnown: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mapping.withDefaults(tc.profile.Preset().Claims)
			got, err := m.identity(tc.claims, tc.trustEmail)
			if tc.wantNoSubject {
				if !errors.Is(err, errNoSubject) {
					t.Fatalf("identity() = %v, want errNoSubject", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("identity() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got.Identity, cmpopts.IgnoreFields(Identity{}, "Claims")); diff != "" {
				t.Errorf("identity() (-want +got):\n%s", diff)
			}
			if got.verifiedKnown != tc.wantKnown {
				t.Errorf("identity() verifiedKnown = %v, want %v", got.verifiedKnown, tc.wantKnown)
			}
		})
	}
}

func TestMergeIDTokenWins(t *testing.T) {
	m := ClaimMapping{}.withDefaults(ProfileGeneric.Preset().Claims)
	tests := []struct {
		name                string
		idToken, info, want map[string]any
	}{
		{
			name:    "userinfo fills what the ID token lacks",
			idToken: map[string]any{"sub": "s", "name": "from token"},
			info:    map[string]any{"sub": "s", "name": "from userinfo", "email": "a@x", "email_verified": true},
			want:    map[string]any{"sub": "s", "name": "from token", "email": "a@x", "email_verified": true},
		},
		{
			name:    "userinfo verifies the same address",
			idToken: map[string]any{"sub": "s", "email": "a@x"},
			info:    map[string]any{"sub": "s", "email": "a@x", "email_verified": true},
			want:    map[string]any{"sub": "s", "email": "a@x", "email_verified": true},
		},
		{
			// Its email_verified is about b@x, not the ID token's a@x.
			name:    "userinfo's verification of another address is not taken",
			idToken: map[string]any{"sub": "s", "email": "a@x"},
			info:    map[string]any{"sub": "s", "email": "b@x", "email_verified": true, "name": "N"},
			want:    map[string]any{"sub": "s", "email": "a@x", "name": "N"},
		},
		{
			// Its email_verified is about no address; userinfo's pair stays.
			name:    "the ID token's verification without an email is not lent",
			idToken: map[string]any{"sub": "s", "email_verified": true},
			info:    map[string]any{"sub": "s", "email": "b@x", "email_verified": false},
			want:    map[string]any{"sub": "s", "email": "b@x", "email_verified": false},
		},
		{
			name:    "the ID token's verification without an email, userinfo without one",
			idToken: map[string]any{"sub": "s", "email_verified": true},
			info:    map[string]any{"sub": "s", "email": "b@x"},
			want:    map[string]any{"sub": "s", "email": "b@x"},
		},
		{
			name:    "the ID token's own verification wins",
			idToken: map[string]any{"sub": "s", "email": "a@x", "email_verified": false},
			info:    map[string]any{"sub": "s", "email": "a@x", "email_verified": true},
			want:    map[string]any{"sub": "s", "email": "a@x", "email_verified": false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, merge(tc.idToken, tc.info, m)); diff != "" {
				t.Errorf("merge() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMergeIDTokenVerificationWithoutEmailNotLent (issue 11 review): an ID
// token's email_verified true without an email (Keycloak's "email verified"
// and "email" mappers are toggled for the ID token separately) must not
// verify userinfo's address, least of all where userinfo says false.
func TestMergeIDTokenVerificationWithoutEmailNotLent(t *testing.T) {
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
