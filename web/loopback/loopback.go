package loopback

import (
	"net"
	"strings"
)

// HTTPSHint ends a configuration message for an http URL on a host that
// Host refuses: the rule in words, for every package's configuration.
const HTTPSHint = "must use https (http is allowed only for localhost/127.0.0.1/[::1])"

// Host reports whether host, a name or an IP literal without brackets or
// port (url.URL.Hostname's form), is loopback.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostPort reports whether addr, a host:port such as a listen address
// ("127.0.0.1:8081", "[::1]:8081", "localhost:8081"), names a loopback
// host. ":8081" (every interface) is not loopback.
func HostPort(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && Host(host)
}
