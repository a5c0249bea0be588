package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// A token entry goes on the wire with its jti, and nothing of the other
// kinds' keys.
func TestWireRevocationToken(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	b, err := json.Marshal(wireRevocation(store.Revocation{
		Seq: 7, Kind: store.RevokeToken, TokenID: "jti-1", Subject: "alice", NotBefore: at, ExpiresAt: at.Add(7 * time.Minute),
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":7,"kind":"token","sub":"alice","jti":"jti-1","not_before":1748779200,"expires_at":1748779620}`
	if string(b) != want {
		t.Errorf("wire entry = %s, want %s", b, want)
	}
}

func TestFeedUnixRoundsUp(t *testing.T) {
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if got := feedUnix(base); got != base.Unix() {
		t.Errorf("feedUnix(whole second) = %d, want %d", got, base.Unix())
	}
	// A token issued in the same second but before the revocation has
	// iat = base; not_before must be after it.
	if got := feedUnix(base.Add(time.Microsecond)); got != base.Unix()+1 {
		t.Errorf("feedUnix(second + 1µs) = %d, want %d", got, base.Unix()+1)
	}
}

func TestFeedETagMatches(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{`"7"`, true}, {`W/"7"`, true}, {`"3", "7"`, true}, {`*`, true},
		{``, false}, {`"70"`, false}, {`7`, false},
	} {
		if got := feedETagMatches(tc.header, `"7"`); got != tc.want {
			t.Errorf("feedETagMatches(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
