package verify

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Claims are the verified claims of a Keyward access token (RFC 9068 plus
// Keyward's identity claims). Verify may return the same *Claims for repeated
// calls with the same token: treat it as read-only.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ExpiresAt time.Time
	IssuedAt  time.Time // zero when absent
	NotBefore time.Time // zero when absent
	JTI       string
	ClientID  string
	Scopes    []string // the space-separated scope claim, split
	SessionID string   // sid
	IDP       string   // idp: the upstream the subject signed in with
	Email     string
	// EmailVerified is the email_verified claim: true only when the token
	// says so with a JSON true. Keyward puts it wherever it puts email; an
	// Email without it is an address nobody checked.
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	// Raw holds every claim as decoded by encoding/json (numbers are float64).
	Raw map[string]any

	// hdr holds the forward-auth identity header values, computed once per
	// verified token so a cached token costs no work per request.
	hdr identityHeaders
}

type identityHeaders struct {
	user, preferredUsername, email, groups, subject []string
}

// User is the name a gateway passes upstream as X-Auth-Request-User: the
// Verifier's Config.UserClaim, by default sub (stable, never reassigned);
// "" when the token lacks that claim (see Config.UserClaim).
func (c *Claims) User() string {
	if len(c.hdr.user) == 0 {
		return ""
	}
	return c.hdr.user[0]
}

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool { return contains(c.Scopes, s) }

// InGroup reports whether the subject is in group g.
func (c *Claims) InGroup(g string) bool { return contains(c.Groups, g) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// claimsFromMap extracts the typed claims. It checks types only; the time and
// issuer checks are Verifier.checkClaims.
func claimsFromMap(m map[string]any) (*Claims, error) {
	c := &Claims{Raw: m}
	var ok bool
	strs := []struct {
		name string
		dst  *string
	}{
		{"iss", &c.Issuer}, {"sub", &c.Subject}, {"jti", &c.JTI}, {"client_id", &c.ClientID},
		{"sid", &c.SessionID}, {"idp", &c.IDP}, {"email", &c.Email}, {"name", &c.Name},
		{"preferred_username", &c.PreferredUsername},
	}
	for _, s := range strs {
		if *s.dst, ok = optString(m, s.name); !ok {
			return nil, errBadPayload
		}
	}
	if c.Audience, ok = stringOrList(m["aud"]); !ok {
		return nil, errBadPayload
	}
	if c.Groups, ok = stringOrList(m["groups"]); !ok {
		return nil, errBadPayload
	}
	switch s := m["scope"].(type) {
	case nil:
	case string:
		c.Scopes = strings.Fields(s)
	default:
		return nil, errBadPayload
	}
	times := []struct {
		name string
		dst  *time.Time
	}{{"exp", &c.ExpiresAt}, {"iat", &c.IssuedAt}, {"nbf", &c.NotBefore}}
	for _, t := range times {
		if *t.dst, ok = numericDate(m[t.name]); !ok {
			return nil, errBadPayload
		}
	}
	c.EmailVerified, _ = m["email_verified"].(bool)
	return c, nil
}

// setIdentityHeaders computes c.hdr, the forward-auth identity headers, for
// the user claim userClaim (see Config.UserClaim):
//   - user: that claim's string value; for "email" only a verified one;
//     nil when absent (the handler then refuses the request);
//   - preferredUsername: preferred_username, which people may change, for
//     display only;
//   - email: only when email_verified is true;
//   - groups: comma-joined, each name escaped by escapeGroup;
//   - subject: sub.
func (c *Claims) setIdentityHeaders(userClaim string) {
	c.hdr = identityHeaders{subject: []string{c.Subject}}
	var user string
	switch userClaim {
	case "sub":
		user = c.Subject
	case "email":
		if c.EmailVerified {
			user = c.Email
		}
	case "preferred_username":
		user = c.PreferredUsername
	case "name":
		user = c.Name
	default:
		user, _ = c.Raw[userClaim].(string)
	}
	if user != "" {
		c.hdr.user = []string{user}
	}
	if c.PreferredUsername != "" {
		c.hdr.preferredUsername = []string{c.PreferredUsername}
	}
	if c.Email != "" && c.EmailVerified {
		c.hdr.email = []string{c.Email}
	}
	if len(c.Groups) > 0 {
		var b strings.Builder
		for i, g := range c.Groups {
			if i > 0 {
				b.WriteByte(',')
			}
			escapeGroup(&b, g)
		}
		c.hdr.groups = []string{b.String()}
	}
}

// escapeGroup writes group g for X-Auth-Request-Groups, where names are
// joined with ',': the bytes an app splitting the header could misread are
// percent-encoded, namely ',' (%2C), '%' (%25), control characters and
// every white-space character (unicode.IsSpace: ' ', NO-BREAK SPACE,
// IDEOGRAPHIC SPACE, ...) at either end of the name, byte by byte (%20,
// %C2%A0; apps often trim after splitting, and Python's str.strip, Java's
// String.strip and .NET's Trim remove Unicode white space too). Every other
// name, "Domain Users" included, is written as it is. Apps split on ',' and
// then percent-decode each name (docs/gateways/nginx.md).
func escapeGroup(b *strings.Builder, g string) {
	const hex = "0123456789ABCDEF"
	// g[lead:trail] is g without white space at either end.
	trimmed := strings.TrimLeftFunc(g, unicode.IsSpace)
	lead := len(g) - len(trimmed)
	trail := lead + len(strings.TrimRightFunc(trimmed, unicode.IsSpace))
	for i := 0; i < len(g); i++ {
		c := g[i]
		if c == ',' || c == '%' || c < ' ' || c == 0x7f || i < lead || i >= trail {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
}

func optString(m map[string]any, name string) (string, bool) {
	switch v := m[name].(type) {
	case nil:
		return "", true
	case string:
		return v, true
	default:
		return "", false
	}
}

// stringOrList accepts a string or an array of strings (RFC 7519 §4.1.3).
func stringOrList(v any) ([]string, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		return []string{v}, true
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	default:
		return nil, false
	}
}

// numericDate converts an RFC 7519 NumericDate; absent is the zero time.
func numericDate(v any) (time.Time, bool) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, true
	case float64:
		if v < 0 || v > 1<<40 || math.IsNaN(v) {
			return time.Time{}, false
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	default:
		return time.Time{}, false
	}
}

// claimEquals reports whether claim name equals one of want: a string claim
// by value, an array claim when any string element does, booleans and numbers
// by their JSON text.
func claimEquals(raw map[string]any, name string, want []string) bool {
	switch v := raw[name].(type) {
	case string:
		return contains(want, v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && contains(want, s) {
				return true
			}
		}
	case bool:
		return contains(want, strconv.FormatBool(v))
	case float64:
		return contains(want, strconv.FormatFloat(v, 'f', -1, 64))
	}
	return false
}

// Indexes of the claims claimsFromJSON extracts.
const (
	ciIss = iota
	ciSub
	ciJTI
	ciClientID
	ciSID
	ciIDP
	ciEmail
	ciName
	ciPreferredUsername
	ciAud
	ciGroups
	ciScope
	ciExp
	ciIat
	ciNbf
	ciEmailVerified
	numClaims
)

func claimIndex(name string) int {
	switch name {
	case "iss":
		return ciIss
	case "sub":
		return ciSub
	case "jti":
		return ciJTI
	case "client_id":
		return ciClientID
	case "sid":
		return ciSID
	case "idp":
		return ciIDP
	case "email":
		return ciEmail
	case "name":
		return ciName
	case "preferred_username":
		return ciPreferredUsername
	case "aud":
		return ciAud
	case "groups":
		return ciGroups
	case "scope":
		return ciScope
	case "exp":
		return ciExp
	case "iat":
		return ciIat
	case "nbf":
		return ciNbf
	case "email_verified":
		return ciEmailVerified
	}
	return -1
}

// claimsFromJSON returns what claimsFromMap returns for the payload decoded
// by encoding/json into a map[string]any — the same claims, or errBadPayload
// in the same cases — but with Raw nil and without building the map: the
// payload is validated by json.Valid (encoding/json's own scanner), then
// scanned once, keeping the last occurrence of each claim as the map would,
// and only those values are decoded. Claim names are matched exactly (after
// unescaping), as map keys are. Strings that need neither unescaping nor
// UTF-8 repair are substrings of one copy of the payload.
func claimsFromJSON(payload []byte) (*Claims, error) {
	if !json.Valid(payload) {
		return nil, errBadPayload
	}
	sc := jsonScanner{s: string(payload)}
	sc.ws()
	if sc.s[sc.i] != '{' { // null, or not an object: not claims
		return nil, errBadPayload
	}
	sc.i++
	var vals [numClaims]string // raw JSON values; "" when absent
	sc.ws()
	if sc.s[sc.i] == '}' {
		sc.i++
	} else {
		for {
			lit := sc.str()
			name, ok := jsonString(lit)
			if !ok {
				return nil, errBadPayload
			}
			sc.ws()
			sc.i++ // ':'
			sc.ws()
			start := sc.i
			if !sc.skip() { // a number encoding/json would refuse
				return nil, errBadPayload
			}
			if k := claimIndex(name); k >= 0 {
				vals[k] = sc.s[start:sc.i]
			}
			sc.ws()
			if sc.s[sc.i] == '}' {
				break
			}
			sc.i++ // ','
			sc.ws()
		}
	}

	c := &Claims{}
	var ok bool
	strs := [...]struct {
		i   int
		dst *string
	}{
		{ciIss, &c.Issuer}, {ciSub, &c.Subject}, {ciJTI, &c.JTI}, {ciClientID, &c.ClientID},
		{ciSID, &c.SessionID}, {ciIDP, &c.IDP}, {ciEmail, &c.Email}, {ciName, &c.Name},
		{ciPreferredUsername, &c.PreferredUsername},
	}
	for _, s := range strs {
		if *s.dst, ok = jsonOptString(vals[s.i]); !ok {
			return nil, errBadPayload
		}
	}
	if c.Audience, ok = jsonStringOrList(vals[ciAud]); !ok {
		return nil, errBadPayload
	}
	if c.Groups, ok = jsonStringOrList(vals[ciGroups]); !ok {
		return nil, errBadPayload
	}
	scope, ok := jsonOptString(vals[ciScope])
	if !ok {
		return nil, errBadPayload
	}
	if vals[ciScope] != "" && vals[ciScope] != "null" {
		c.Scopes = strings.Fields(scope)
	}
	times := [...]struct {
		i   int
		dst *time.Time
	}{{ciExp, &c.ExpiresAt}, {ciIat, &c.IssuedAt}, {ciNbf, &c.NotBefore}}
	for _, t := range times {
		if *t.dst, ok = jsonNumericDate(vals[t.i]); !ok {
			return nil, errBadPayload
		}
	}
	c.EmailVerified = vals[ciEmailVerified] == "true"
	return c, nil
}

func jsonOptString(v string) (string, bool) {
	if v == "" || v == "null" {
		return "", true
	}
	if v[0] != '"' {
		return "", false
	}
	return jsonString(v)
}

func jsonStringOrList(v string) ([]string, bool) {
	switch {
	case v == "" || v == "null":
		return nil, true
	case v[0] == '"':
		s, ok := jsonString(v)
		return []string{s}, ok
	case v[0] != '[':
		return nil, false
	}
	sc := jsonScanner{s: v, i: 1}
	n := 0 // elements, to size the slice
	for sc.ws(); sc.s[sc.i] != ']'; sc.ws() {
		if sc.s[sc.i] != '"' {
			return nil, false
		}
		sc.str()
		n++
		if sc.ws(); sc.s[sc.i] == ',' {
			sc.i++
		}
	}
	out := make([]string, 0, n)
	sc.i = 1
	for sc.ws(); sc.s[sc.i] != ']'; sc.ws() {
		s, ok := jsonString(sc.str())
		if !ok {
			return nil, false
		}
		out = append(out, s)
		if sc.ws(); sc.s[sc.i] == ',' {
			sc.i++
		}
	}
	return out, true
}

func jsonNumericDate(v string) (time.Time, bool) {
	if v == "" || v == "null" {
		return time.Time{}, true
	}
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return time.Time{}, false
	}
	return numericDate(f)
}

// jsonString decodes a JSON string literal (quotes included) from a valid
// document: as a substring when it holds no escape and is valid UTF-8, else
// through encoding/json (which also replaces invalid UTF-8).
func jsonString(lit string) (string, bool) {
	in := lit[1 : len(lit)-1]
	if strings.IndexByte(in, '\\') < 0 && utf8.ValidString(in) {
		return in, true
	}
	var s string
	if err := json.Unmarshal([]byte(lit), &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonScanner walks a document json.Valid accepted, so it checks no syntax.
type jsonScanner struct {
	s string
	i int
}

func (sc *jsonScanner) ws() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// str skips the string literal at sc.i and returns it, quotes included.
func (sc *jsonScanner) str() string {
	start := sc.i
	sc.i++
	for {
		switch sc.s[sc.i] {
		case '\\':
			sc.i += 2
		case '"':
			sc.i++
			return sc.s[start:sc.i]
		default:
			sc.i++
		}
	}
}

// skip skips the value at sc.i. It reports false for a number that
// encoding/json cannot decode into a float64 (out of range), which makes its
// Unmarshal into a map fail wherever the number is.
func (sc *jsonScanner) skip() bool {
	depth := 0
	for {
		switch c := sc.s[sc.i]; {
		case c == '"':
			sc.str()
		case c == '{' || c == '[':
			depth++
			sc.i++
		case c == '}' || c == ']':
			depth--
			sc.i++
		case c == '-' || '0' <= c && c <= '9':
			start := sc.i
			for sc.i < len(sc.s) && isNumberByte(sc.s[sc.i]) {
				sc.i++
			}
			if _, err := strconv.ParseFloat(sc.s[start:sc.i], 64); err != nil {
				return false
			}
		case c == 't' || c == 'n':
			sc.i += 4
		case c == 'f':
			sc.i += 5
		default: // whitespace, ',' and ':' inside a container
			sc.i++
		}
		if depth == 0 {
			return true
		}
	}
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}
