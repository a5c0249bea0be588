package verify

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// claimsViaMap is the reference decoding: encoding/json into a map, then
// claimsFromMap, as Verify does when Raw is wanted.
func claimsViaMap(payload []byte) (*Claims, error) {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil || m == nil {
		return nil, errBadPayload
	}
	return claimsFromMap(m)
}

var claimsJSONSeeds = []string{
	`{"iss":"https://id.example","sub":"corp|1234","aud":["shop-api"],"exp":1764100000,"iat":1764099700,"jti":"j","client_id":"c","scope":"openid orders:read","sid":"s","idp":"corp","email":"a@example.com","name":"Ada","preferred_username":"ada","groups":["staff","shop-admins"],"extra":{"a":[1,true,null,"x"]}}`,
	`{}`, `null`, `[]`, `"x"`, `1`, ` { "iss" : "a" , "sub":"b" } `,
	`{"aud":"one","groups":[],"scope":""}`, `{"aud":[],"groups":"g"}`, `{"aud":[1]}`, `{"aud":["a",null]}`,
	`{"aud":null,"groups":null,"scope":null,"exp":null,"iss":null}`,
	`{"iss":5,"iss":"x"}`, `{"iss":"x","iss":5}`, `{"i\u0073s":"esc","sub":"\u00e9\n"}`, `{"ISS":"upper"}`,
	`{"exp":1e400}`, `{"x":[1e400]}`, `{"x":{"y":-1e-400}}`, `{"exp":-1}`, `{"exp":1.5}`, `{"exp":1099511627777}`,
	`{"exp":"1"}`, `{"scope":["a"]}`, `{"scope":"  a  b "}`, "{\"sub\":\"\xff\xfe\"}", "{\"\xff\":1}",
	`{"email":"e","preferred_username":""}`, `{"groups":["a","b"],"email":""}`, `{"a":"\"}\\"}`,
	`{"email":"e","email_verified":true}`, `{"email":"e","email_verified":false}`, `{"email_verified":"true"}`,
	`{"email_verified":true,"email_verified":1}`, `{"email_verified":null}`, `{"email_verified":[true]}`,
	`{"exp":0,"nbf":-0.0,"iat":1E3}`, `{"iss":true}`, `{"iss":{}}`, `{"iss":[]}`, `{"x":[[[[{}]]]],"sub":"s"}`,
}

func TestClaimsFromJSONMatchesMap(t *testing.T) {
	for _, p := range claimsJSONSeeds {
		checkClaimsJSON(t, []byte(p))
	}
}

// FuzzClaimsFromJSON: the map-free decoder must agree with the map decoding
// on every input. Run: go test -fuzz=FuzzClaimsFromJSON -fuzztime=30s ./web/verify/
func FuzzClaimsFromJSON(f *testing.F) {
	for _, p := range claimsJSONSeeds {
		f.Add([]byte(p))
	}
	f.Fuzz(checkClaimsJSON)
}

func checkClaimsJSON(t *testing.T, payload []byte) {
	want, wantErr := claimsViaMap(payload)
	got, gotErr := claimsFromJSON(payload)
	if gotErr != wantErr {
		t.Fatalf("claimsFromJSON(%q) error = %v, want %v", payload, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got.Raw != nil {
		t.Errorf("claimsFromJSON(%q).Raw = %v, want nil", payload, got.Raw)
	}
	opts := cmp.Options{cmp.AllowUnexported(Claims{}, identityHeaders{}), cmpopts.IgnoreFields(Claims{}, "Raw")}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("claimsFromJSON(%q) mismatch (-map +json):\n%s", payload, diff)
	}
}
