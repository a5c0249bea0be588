package loopback

import "testing"

func TestHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"127.0.0.1", true},
		{"127.0.0.2", true},
		{"127.255.255.254", true},
		{"::1", true},
		{"0:0:0:0:0:0:0:1", true},
		{"::ffff:127.0.0.1", true},

		{"", false},
		{"localhost.", false},
		{"foo.localhost", false},
		{"localhost.example.com", false},
		{"127.0.0.1.nip.io", false},
		{"128.0.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"::2", false},
		{"::1%lo", false},
		{"[::1]", false},
		{"10.0.0.1", false},
		{"example.com", false},
		{"0x7f.0.0.1", false},
		{"2130706433", false},
		{"127.1", false},
	}
	for _, tt := range tests {
		if got := Host(tt.host); got != tt.want {
			t.Errorf("Host(%q) = %t, want %t", tt.host, got, tt.want)
		}
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8081", true},
		{"127.0.0.5:8081", true},
		{"[::1]:8081", true},
		{"localhost:8081", true},
		{"localhost:", true},

		{":8081", false},
		{"0.0.0.0:8081", false},
		{"[::]:8081", false},
		{"10.0.0.1:8081", false},
		{"127.0.0.1", false},
		{"::1:8081", false},
		{"localhost", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := HostPort(tt.addr); got != tt.want {
			t.Errorf("HostPort(%q) = %t, want %t", tt.addr, got, tt.want)
		}
	}
}
