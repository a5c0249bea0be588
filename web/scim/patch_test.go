package scim

import (
	"encoding/json"
	"testing"

	"github.com/elimity-com/scim"
	"github.com/google/go-cmp/cmp"
	filter "github.com/scim2/filter-parser/v2"
)

func op(t *testing.T, kind, path string, value any) scim.PatchOperation {
	t.Helper()
	o := scim.PatchOperation{Op: kind, Value: value}
	if path != "" {
		p, err := filter.ParsePath([]byte(path))
		if err != nil {
			t.Fatalf("ParsePath(%q): %v", path, err)
		}
		o.Path = &p
	}
	return o
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestApplyPatch(t *testing.T) {
	user := `{"userName":"bob","active":true,"name":{"givenName":"Bob"},
		"emails":[{"type":"work","value":"bob@example.com","primary":true},{"type":"home","value":"bob@home.example"}]}`
	tests := []struct {
		name string
		base string
		ops  func(t *testing.T) []scim.PatchOperation
		want string
	}{
		{"okta: replace without a path", user,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "replace", "", map[string]any{"active": false})}
			},
			`{"userName":"bob","active":false,"name":{"givenName":"Bob"},"emails":[{"type":"work","value":"bob@example.com","primary":true},{"type":"home","value":"bob@home.example"}]}`},
		{"entra: replace active by path", user,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "replace", "active", false)}
			},
			`{"userName":"bob","active":false,"name":{"givenName":"Bob"},"emails":[{"type":"work","value":"bob@example.com","primary":true},{"type":"home","value":"bob@home.example"}]}`},
		{"sub-attribute", user,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "replace", "name.familyName", "Example"), op(t, "remove", "name.givenName", nil)}
			},
			`{"userName":"bob","active":true,"name":{"familyName":"Example"},"emails":[{"type":"work","value":"bob@example.com","primary":true},{"type":"home","value":"bob@home.example"}]}`},
		{"value filter with a sub-attribute", user,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "replace", `emails[type eq "work"].value`, "robert@example.com")}
			},
			`{"userName":"bob","active":true,"name":{"givenName":"Bob"},"emails":[{"type":"work","value":"robert@example.com","primary":true},{"type":"home","value":"bob@home.example"}]}`},
		{"value filter matching nothing adds the element", `{"userName":"bob"}`,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "replace", `emails[type eq "work"].value`, "bob@example.com")}
			},
			`{"userName":"bob","emails":[{"type":"work","value":"bob@example.com"}]}`},
		{"remove by value filter", user,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "remove", `emails[type eq "HOME"]`, nil)}
			},
			`{"userName":"bob","active":true,"name":{"givenName":"Bob"},"emails":[{"type":"work","value":"bob@example.com","primary":true}]}`},
		{"members: add skips those present, remove, replace", `{"displayName":"eng","members":[{"value":"u1"}]}`,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{
					op(t, "add", "members", []any{map[string]any{"value": "u1"}, map[string]any{"value": "u2"}, map[string]any{"value": "u3"}}),
					op(t, "remove", `members[value eq "u2"]`, nil),
				}
			},
			`{"displayName":"eng","members":[{"value":"u1"},{"value":"u3"}]}`},
		{"attribute names are case-insensitive", `{"userName":"bob","Active":true}`,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "replace", "active", false)}
			},
			`{"userName":"bob","Active":false}`},
		{"entra: extension attribute by its full name without a path", `{"userName":"bob"}`,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "add", "", map[string]any{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D"})}
			},
			`{"userName":"bob","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D"}}`},
		{"extension attribute", `{"userName":"bob"}`,
			func(t *testing.T) []scim.PatchOperation {
				return []scim.PatchOperation{op(t, "add", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "R&D")}
			},
			`{"userName":"bob","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decode(t, tt.base)
			if err := applyPatch(got, tt.ops(t)); err != nil {
				t.Fatalf("applyPatch: %v", err)
			}
			if diff := cmp.Diff(decode(t, tt.want), got); diff != "" {
				t.Errorf("applyPatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyPatchRefuses(t *testing.T) {
	for name, o := range map[string]scim.PatchOperation{
		"no path, not an object":   op(t, "replace", "", false),
		"no path, remove":          op(t, "remove", "", map[string]any{"active": false}),
		"filter that adds nothing": op(t, "replace", `emails[type ne "work"].value`, "x"),
	} {
		if err := applyPatch(decode(t, `{"userName":"bob"}`), []scim.PatchOperation{o}); err == nil {
			t.Errorf("%s: applyPatch = nil, want an error", name)
		}
	}
}

func TestNormalizePatch(t *testing.T) {
	tests := []struct{ in, want string }{
		// Entra ID without the aadOptscim062020 flag.
		{`{"schemas":["x"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			`{"schemas":["x"],"Operations":[{"op":"Replace","path":"active","value":false}]}`},
		{`{"Operations":[{"op":"replace","value":{"active":"True"}}]}`,
			`{"Operations":[{"op":"replace","value":{"active":true}}]}`},
		{`{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m-1"}]}`,
			`{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"m-1"}}]}`},
		// Untouched: booleans already, other attributes, nonsense.
		{`{"Operations":[{"op":"replace","path":"active","value":false}]}`, ""},
		{`{"Operations":[{"op":"replace","path":"title","value":"False"}]}`, ""},
		{`{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`, ""},
		{`not json`, ""},
	}
	for _, tt := range tests {
		want := tt.want
		if want == "" {
			want = tt.in
		}
		got := string(normalizePatch([]byte(tt.in)))
		if want == tt.in {
			if got != want {
				t.Errorf("normalizePatch(%s) = %s, want it unchanged", tt.in, got)
			}
			continue
		}
		if diff := cmp.Diff(decode(t, want), decode(t, got)); diff != "" {
			t.Errorf("normalizePatch(%s) (-want +got):\n%s", tt.in, diff)
		}
	}
}
