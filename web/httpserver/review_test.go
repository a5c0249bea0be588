package httpserver

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// Security review of the connection cap (issue 11, Low 4). The cap is one
// pool for every client, and the default IdleTimeout (2 minutes) lets a
// keep-alive connection hold a slot after one cheap request. One client
// that opens MaxConnections connections and sends one request on each
// (4096 requests every 2 minutes, about 34 a second, at the defaults)
// holds every slot, and every other client waits in the accept queue: the
// cap turns a memory bound into a lock-out. Here the cap is 4 and the
// timeouts are the defaults, as serve, verify and the admin server build
// them; the fifth client must still be answered while the attacker's
// connections sit idle. (bound is only how long the test waits for the
// answer; the server would hold the slots for DefaultIdleTimeout.)
func TestReviewIdleKeepAliveConnectionsLockOutOthers(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }),
		Options{MaxConnections: 4})
	for i := range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("attacker connection %d: %v", i+1, err)
		}
		resp.Body.Close() // and the connection stays open, idle
	}
	c, err := net.Dial("tcp", addr) // the kernel accepts it into the queue
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(bound))
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Errorf("another client while 4 idle keep-alive connections hold the cap of 4: %v, want an answer (the idle ones should yield, or the cap should be per client address)", err)
	}
}
