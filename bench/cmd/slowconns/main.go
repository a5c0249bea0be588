// Command slowconns holds many slow connections open against a server and
// reports how the server copes: how many it accepted and answered, how many
// it closed and when, and (with -pid) its resident memory before and at its
// peak. It measures issue 11's "5,000 slow connections" (docs/performance.md):
//
//	go run ./bench/cmd/slowconns -addr 127.0.0.1:4180 -n 5000 -mode header -hold 40s -pid $(pgrep -nx keyward)
//
// Modes: header sends a request line and then one header byte every
// -every (a slow-header client); body sends complete headers announcing a
// 100 KB body and then one body byte every -every; idle sends one complete
// request, reads the answer, and keeps the connection idle. Connections stay
// open until the server closes them or -hold ends. It is bounded: at most
// 20,000 connections and 10 minutes; loopback only.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/web/loopback"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4180", "loopback host:port of the server")
	n := flag.Int("n", 5000, "connections to open (at most 20000)")
	mode := flag.String("mode", "header", "header, body or idle")
	hold := flag.Duration("hold", 40*time.Second, "how long to hold the connections (at most 10m)")
	every := flag.Duration("every", time.Second, "pause between the bytes a slow client sends")
	dialTimeout := flag.Duration("dial-timeout", 5*time.Second, "give up on a connection the server does not accept within this")
	pid := flag.Int("pid", 0, "process whose resident memory to sample (0: none)")
	flag.Parse()
	if err := run(*addr, *n, *mode, *hold, *every, *dialTimeout, *pid); err != nil {
		fmt.Fprintln(os.Stderr, "slowconns:", err)
		os.Exit(1)
	}
}

// result is what happened to one connection.
type result struct {
	dialed   bool
	answered bool          // the server answered within the hold
	closedAt time.Duration // when the server closed it; 0: still open at the end
}

func run(addr string, n int, mode string, hold, every, dialTimeout time.Duration, pid int) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if !loopback.HostPort(addr) {
		return fmt.Errorf("-addr %s: loopback addresses only", addr)
	}
	switch {
	case n < 1 || n > 20000:
		return errors.New("-n must be from 1 to 20000")
	case hold <= 0 || hold > 10*time.Minute:
		return errors.New("-hold must be positive and at most 10m")
	case every <= 0:
		return errors.New("-every must be positive")
	case mode != "header" && mode != "body" && mode != "idle":
		return fmt.Errorf("-mode %q: use header, body or idle", mode)
	}

	before := rss(pid)
	var peak atomic.Int64
	peak.Store(before.rss)
	ctx, cancel := context.WithTimeout(context.Background(), hold)
	defer cancel()
	sampled := make(chan struct{})
	go func() { // sample the server's memory every 250 ms
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if m := rss(pid).rss; m > peak.Load() {
					peak.Store(m)
				}
			}
		}
	}()

	start := time.Now()
	results := make([]result, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256) // dials in flight
	for i := range results {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = slowClient(ctx, addr, mode, every, dialTimeout, start, sem)
		}()
	}
	wg.Wait()
	<-sampled
	after := rss(pid)

	var dialed, answered, closed int
	var closedAt []time.Duration
	for _, r := range results {
		if r.dialed {
			dialed++
		}
		if r.answered {
			answered++
		}
		if r.closedAt > 0 {
			closed++
			closedAt = append(closedAt, r.closedAt)
		}
	}
	slices.Sort(closedAt)
	fmt.Printf("mode=%s n=%d hold=%s every=%s addr=%s\n", mode, n, hold, every, addr)
	fmt.Printf("connected: %d   not accepted within %s: %d\n", dialed, dialTimeout, n-dialed)
	fmt.Printf("answered: %d   closed by the server within the hold: %d   still open at the end: %d\n", answered, closed, dialed-closed)
	if len(closedAt) > 0 {
		q := func(p float64) time.Duration {
			return closedAt[int(p*float64(len(closedAt)-1))].Round(100 * time.Millisecond)
		}
		fmt.Printf("closed after (from the first dial): min %s  median %s  max %s\n", q(0), q(0.5), q(1))
	}
	if pid != 0 {
		fmt.Printf("server RSS: before %.1f MB   peak %.1f MB   at the end %.1f MB   (VmHWM at the end %.1f MB)\n",
			mb(before.rss), mb(peak.Load()), mb(after.rss), mb(after.hwm))
	}
	return nil
}

// slowClient opens one connection and misbehaves on it as mode says until
// ctx ends or the server closes it. It frees its sem slot once dialed.
func slowClient(ctx context.Context, addr, mode string, every, dialTimeout time.Duration, start time.Time, sem chan struct{}) result {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	<-sem
	if err != nil {
		return result{}
	}
	defer c.Close()
	res := result{dialed: true}
	closed := make(chan struct{})
	go func() { // the server closing (or answering) shows up here
		defer close(closed)
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			res.answered = ctx.Err() == nil // not one answered while the hold ends
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			_, _ = io.Copy(io.Discard, br) // then wait for the close
		}
		if ctx.Err() == nil {
			res.closedAt = time.Since(start)
		}
	}()

	var first, trickle string
	switch mode {
	case "header":
		first, trickle = "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow-"+strings.Repeat("a", 64)
	case "body":
		first, trickle = "POST /oauth2/auth HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(100_000)+"\r\n\r\n", "a"
	case "idle":
		first = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	}
	if _, err := io.WriteString(c, first); err != nil {
		<-closed
		return res
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			_ = c.Close()
			<-closed
			return res
		case <-closed:
			return res
		case <-t.C:
			if trickle != "" {
				_, _ = c.Write([]byte{trickle[i%len(trickle)]})
			}
		}
	}
}

type mem struct{ rss, hwm int64 } // bytes

// rss reads VmRSS and VmHWM of pid from /proc (zero when pid is 0 or gone).
func rss(pid int) mem {
	var m mem
	if pid == 0 {
		return m
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		}
	}
	return m
}

func mb(b int64) float64 { return float64(b) / 1e6 }
