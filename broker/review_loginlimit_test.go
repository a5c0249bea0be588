package broker

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// Security review of the quiet reserve (issue 11, Low 5): quietness is
// judged per /64, so one attacker holding an IPv6 /48 (a free tunnel
// broker hands one out) is 65,536 "quiet newcomers". Sending each attempt
// from a /64 it has not used, it takes the ordinary share and then the
// reserve, and ten people arriving from fresh addresses during the flood
// are all refused by the global ceiling. Quietness needs a coarser key
// (the /48, or the /56, for IPv6) than the per-address bucket.
func TestReviewLoginReserveDrainedFromOneIPv6Slash48(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{}) // the defaults
	now := limitNow
	sent := 0
	for second := range 30 {
		now = limitNow.Add(time.Duration(second) * time.Second)
		for range 400 { // 400 attempts a second, each from a fresh /64
			l.allow(netip.MustParseAddr(fmt.Sprintf("2001:db8:77:%x::1", sent%0x10000)), now)
			sent++
		}
	}
	admitted := 0
	for i := range 10 {
		if le, _ := l.allow(netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", i+1)), now); le == nil {
			admitted++
		}
	}
	if admitted < 9 {
		t.Errorf("during a flood from one IPv6 /48, %d of 10 fresh addresses signed in, want at least 9", admitted)
	}
}
