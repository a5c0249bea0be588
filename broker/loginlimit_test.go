package broker

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var limitNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestLimiter(t *testing.T, cfg LoginLimits) *loginLimiter {
	t.Helper()
	l, err := newLoginLimiter(cfg)
	if err != nil {
		t.Fatalf("newLoginLimiter() = %v", err)
	}
	return l
}

// take calls allow n times at now and fails unless every call is allowed.
func take(t *testing.T, l *loginLimiter, addr string, n int, now time.Time) {
	t.Helper()
	for i := range n {
		if le, _ := l.allow(netip.MustParseAddr(addr), now); le != nil {
			t.Fatalf("allow(%s) #%d = %v, want allowed", addr, i+1, le)
		}
	}
}

// refused fails unless allow(addr) at now is refused by scope with
// retryAfter.
func refused(t *testing.T, l *loginLimiter, addr string, now time.Time, scope string, retryAfter time.Duration) {
	t.Helper()
	le, _ := l.allow(netip.MustParseAddr(addr), now)
	if le == nil || le.Scope != scope || le.RetryAfter != retryAfter {
		t.Fatalf("allow(%s) = %v, want refused by %s, retry after %s", addr, le, scope, retryAfter)
	}
}

func TestLoginLimitPerClient(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{}) // the defaults: 60/min, burst 30
	take(t, l, "192.0.2.1", 30, limitNow)
	refused(t, l, "192.0.2.1", limitNow, LimitClient, time.Second)
	// The refusal took nothing: one token after one second.
	take(t, l, "192.0.2.1", 1, limitNow.Add(time.Second))
	refused(t, l, "192.0.2.1", limitNow.Add(time.Second), LimitClient, time.Second)
	// Another address has its own bucket; an IPv4-mapped one is the same.
	take(t, l, "192.0.2.2", 30, limitNow)
	refused(t, l, "::ffff:192.0.2.2", limitNow, LimitClient, time.Second)
}

func TestLoginLimitBurstIsExact(t *testing.T) {
	for _, tt := range []struct {
		perMinute, burst int
		retryAfter       time.Duration
	}{
		{perMinute: 30, burst: 20, retryAfter: 2 * time.Second},
		{perMinute: 1, burst: 1, retryAfter: time.Minute},
		{perMinute: 7, burst: 3, retryAfter: 9 * time.Second}, // 60/7 s, rounded up
	} {
		l := newTestLimiter(t, LoginLimits{PerMinute: tt.perMinute, Burst: tt.burst})
		take(t, l, "198.51.100.7", tt.burst, limitNow)
		refused(t, l, "198.51.100.7", limitNow, LimitClient, tt.retryAfter)
		take(t, l, "198.51.100.7", 1, limitNow.Add(tt.retryAfter))
	}
}

func TestLoginLimitIPv6Slash64(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{PerMinute: 60, Burst: 2})
	take(t, l, "2001:db8:1:2::1", 1, limitNow)
	take(t, l, "2001:db8:1:2:ffff::9", 1, limitNow)
	refused(t, l, "2001:db8:1:2::abcd", limitNow, LimitClient, time.Second)
	take(t, l, "2001:db8:1:3::1", 2, limitNow) // the next /64
}

func TestLoginLimitGlobalCeiling(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{PerMinute: 60, Burst: 2, GlobalPerSecond: 5, GlobalBurst: 10})
	for i := range 10 {
		take(t, l, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String(), 1, limitNow)
	}
	refused(t, l, "203.0.113.200", limitNow, LimitGlobal, time.Second)
	// The global refusal took nothing from the client's bucket: after the
	// global bucket refills, the client still has its whole burst.
	later := limitNow.Add(time.Second) // 5 global tokens back
	take(t, l, "203.0.113.200", 2, later)
	refused(t, l, "203.0.113.200", later, LimitClient, time.Second)
}

func TestLoginLimitMapIsBounded(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{PerMinute: 60, Burst: 1, GlobalPerSecond: 1_000_000, GlobalBurst: 1_000_000, MaxClients: 100})
	for i := range 5000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if le, _ := l.allow(addr, limitNow); le != nil {
			t.Fatalf("allow(%s) = %v, want allowed (a new client)", addr, le)
		}
		if n := l.tracked(); n > 100 {
			t.Fatalf("after %d clients: %d tracked, want at most 100", i+1, n)
		}
	}
	if n := l.tracked(); n != 100 {
		t.Errorf("tracked = %d, want 100", n)
	}
	// A client seen recently keeps its (empty) bucket while others come
	// and go: the least recently seen is forgotten first.
	busy := "10.255.0.1"
	take(t, l, busy, 1, limitNow)
	for i := range 99 {
		refused(t, l, busy, limitNow, LimitClient, time.Second)
		take(t, l, netip.AddrFrom4([4]byte{172, 16, 0, byte(i)}).String(), 1, limitNow)
	}
	refused(t, l, busy, limitNow, LimitClient, time.Second)
}

func TestLoginLimitLogsOncePerMinute(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{PerMinute: 1, Burst: 1, GlobalPerSecond: 1, GlobalBurst: 1})
	addr := netip.MustParseAddr("192.0.2.9")
	var logged []bool
	for _, at := range []time.Duration{0, 0, time.Second, 30 * time.Second, 70 * time.Second, 80 * time.Second} {
		_, log := l.allow(addr, limitNow.Add(at))
		logged = append(logged, log)
	}
	// 0s allowed; 0s refused and logged; 1s and 30s refused quietly; 70s
	// allowed (a token is back); 80s refused and logged (a minute since).
	want := []bool{false, true, false, false, false, true}
	for i := range want {
		if logged[i] != want[i] {
			t.Fatalf("logged = %v, want %v", logged, want)
		}
	}
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8::1", "2001:db8::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := clientKey(netip.MustParseAddr(tt.in)).String(); got != tt.want {
			t.Errorf("clientKey(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got := clientKey(netip.Addr{}); got.IsValid() {
		t.Errorf("clientKey(invalid) = %s, want the invalid prefix", got)
	}
}

func TestLoginLimitUnlimited(t *testing.T) {
	si := &signIn{now: func() time.Time { return limitNow }}
	for range 1000 {
		if err := si.limitLogin(t.Context(), netip.MustParseAddr("192.0.2.1")); err != nil {
			t.Fatalf("limitLogin() without a limiter = %v, want nil", err)
		}
	}
}

// TestLoginLimitFloodLeavesRoomForNewcomers: 100 addresses flood at far
// more than the global ceiling (each at and above its own limit) for two
// minutes; one fresh address a second tries to sign in during the second
// minute, after that second's flood. At least 9 of every 10 get through,
// and the ceiling still holds for everybody together.
func TestLoginLimitFloodLeavesRoomForNewcomers(t *testing.T) {
	cfg := LoginLimits{} // the defaults: 60/min and 30 per address; 50/s and 200 for all
	l := newTestLimiter(t, cfg)
	cfg.withDefaults()
	flooder := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i % 250)}) }
	const seconds = 120
	allowed, fresh, freshAllowed := 0, 0, 0
	for s := range seconds {
		for tick := range 10 { // every flooder tries every 100 ms
			now := limitNow.Add(time.Duration(s)*time.Second + time.Duration(tick)*100*time.Millisecond)
			for i := range 100 {
				if le, _ := l.allow(flooder(i), now); le == nil {
					allowed++
				}
			}
		}
		if s < seconds/2 {
			continue
		}
		// At the same instant as the flood's last try this second.
		now := limitNow.Add(time.Duration(s)*time.Second + 900*time.Millisecond)
		fresh++
		if le, _ := l.allow(netip.AddrFrom4([4]byte{203, 0, 113, byte(s)}), now); le == nil {
			allowed++
			freshAllowed++
		} else if le.Scope != LimitGlobal {
			t.Fatalf("fresh address refused by %s, want only the global ceiling to refuse anybody new", le.Scope)
		}
	}
	if freshAllowed*10 < fresh*9 {
		t.Errorf("%d of %d fresh addresses signed in during the flood, want at least 90%%", freshAllowed, fresh)
	}
	if ceiling := cfg.GlobalPerSecond*seconds + cfg.GlobalBurst; allowed > ceiling {
		t.Errorf("%d attempts allowed in %d s, want at most the ceiling's %d", allowed, seconds, ceiling)
	}
	t.Logf("%d of %d fresh addresses allowed; %d attempts allowed in all (ceiling %d)", freshAllowed, fresh, allowed, cfg.GlobalPerSecond*seconds+cfg.GlobalBurst)
}

// The reserve is part of the ceiling, not added to it: fresh addresses
// (all quiet) together get exactly the global burst, then its rate.
func TestLoginLimitReserveIsWithinCeiling(t *testing.T) {
	l := newTestLimiter(t, LoginLimits{GlobalPerSecond: 50, GlobalBurst: 200})
	count := func(from int, now time.Time) (n int) {
		for i := range 1000 {
			if le, _ := l.allow(netip.AddrFrom4([4]byte{10, 1, byte((from + i) >> 8), byte(from + i)}), now); le == nil {
				n++
			}
		}
		return n
	}
	if n := count(0, limitNow); n != 200 {
		t.Errorf("fresh addresses allowed at once = %d, want the global burst 200", n)
	}
	if n := count(1000, limitNow.Add(time.Second)); n != 50 {
		t.Errorf("fresh addresses allowed a second later = %d, want the global rate 50", n)
	}
	// An address that keeps trying is not quiet any more: once the
	// ordinary share is empty it is refused while newcomers still pass.
	l = newTestLimiter(t, LoginLimits{GlobalPerSecond: 50, GlobalBurst: 200})
	busy := "192.0.2.50"
	take(t, l, busy, quietAttempts, limitNow)
	for i := range 200 - 40 - quietAttempts { // the ordinary share's rest
		take(t, l, netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}).String(), 1, limitNow)
	}
	refused(t, l, busy, limitNow, LimitGlobal, time.Second)
	take(t, l, "192.0.2.51", 1, limitNow) // quiet: from the reserve
}

// Quietness was judged per /64, so one attacker holding an IPv6 /48 (a free tunnel
// broker hands one out) is 65,536 "quiet newcomers". Sending each attempt
// from a /64 it has not used, it takes the ordinary share and then the
// reserve, and ten people arriving from fresh addresses during the flood
// are all refused by the global ceiling. Quietness needs a coarser key
// (the /48, or the /56, for IPv6) than the per-address bucket.
func TestLoginLimitReserveHoldsAgainstOneIPv6Slash48(t *testing.T) {
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
