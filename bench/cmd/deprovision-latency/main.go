// Command deprovision-latency measures, on loopback, the time from an admin
// deprovisioning (POST /admin/v1/subjects/{id}/deprovision, what `keyward
// admin deprovision` sends) to the first 401 for that person's unexpired
// access token at an edge verifier polling the revocation feed.
//
//	go run ./bench/cmd/deprovision-latency -runs 50 -interval 1s
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/bench/harness"
	"github.com/keyward/keyward/broker"
	"github.com/keyward/keyward/test/brokertest"
	"github.com/keyward/keyward/web"
	"github.com/keyward/keyward/web/verify"
)

const (
	readerID     = "edge-verifier"
	readerSecret = "edge-verifier-secret-0123456789-0123456789"
	adminToken   = "admin-token-0123456789-0123456789-0123456789"
)

func main() {
	runs := flag.Int("runs", 50, "deprovisionings to measure (at most 500)")
	interval := flag.Duration("interval", time.Second, "the verifier's revocation-feed poll interval (keyward verify's default is 5s)")
	flag.Parse()
	if *runs < 1 || *runs > 500 || *interval < 50*time.Millisecond || *interval > time.Minute {
		fmt.Fprintln(os.Stderr, "deprovision-latency: -runs must be 1..500 and -interval 50ms..1m")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*runs)*(*interval+5*time.Second)+time.Minute)
	defer cancel()
	if err := run(ctx, *runs, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "deprovision-latency:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, runs int, interval time.Duration) error {
	dir, err := os.MkdirTemp("", "keyward-deprov-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env, err := brokertest.Start(ctx, brokertest.Options{
		Dir: dir, AutoLogin: "alice", // real fsync, as in production
		Clients: []broker.Client{
			{ID: harness.ClientID, Secret: harness.ClientSecret, RedirectURIs: []string{harness.ClientRedirect}},
			{ID: readerID, Secret: readerSecret, GrantTypes: []string{"client_credentials"}},
		},
		Broker: func(c *broker.Config) {
			c.RevocationReaders = []string{readerID}
			c.LoginLimits.InsecureUnlimited = true // every sign-in comes from 127.0.0.1
		},
	})
	if err != nil {
		return err
	}
	defer env.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	adminSrv := &http.Server{Handler: web.NewAdmin(web.AdminConfig{Broker: env.Broker, Keys: env.Keys, Token: []byte(adminToken)}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = adminSrv.Serve(ln) }()
	defer adminSrv.Close()
	adminURL := "http://" + ln.Addr().String()

	v, err := verify.New(ctx, verify.Config{
		Issuer: env.Issuer, Audiences: []string{harness.ClientID},
		Revocation: &verify.RevocationConfig{Interval: interval, MaxStaleness: 10 * interval, ClientID: readerID, ClientSecret: readerSecret},
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = v.Run(runCtx) }() // polls the feed until this run ends
	signIn := harness.NewSignInClient(env.Issuer, harness.NewTransport(4))
	var lat []time.Duration
	for i := range runs {
		env.IdPs[0].SetNextClaims(map[string]any{"sub": fmt.Sprintf("person-%d", i), "email": fmt.Sprintf("p%d@example.com", i)})
		tok, err := signIn.SignIn(ctx, nil)
		if err != nil {
			return fmt.Errorf("run %d: sign in: %w", i, err)
		}
		if _, err := v.Verify(ctx, tok.AccessToken); err != nil {
			return fmt.Errorf("run %d: fresh token refused: %w", i, err)
		}
		sub, err := subjectOf(tok.AccessToken)
		if err != nil {
			return err
		}
		// Spread the deprovisioning over the poll cycle.
		time.Sleep(time.Duration(i%10) * interval / 10)
		start := time.Now()
		if err := deprovision(ctx, adminURL, sub); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		for {
			_, err := v.Verify(ctx, tok.AccessToken)
			if err != nil {
				var ve *verify.Error
				if !errors.As(err, &ve) || ve.Status != http.StatusUnauthorized {
					return fmt.Errorf("run %d: verifier answered %w, want 401", i, err)
				}
				break
			}
			if time.Since(start) > 3*interval+5*time.Second {
				return fmt.Errorf("run %d: still accepted after %v", i, time.Since(start))
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		fmt.Fprintf(os.Stderr, "\rrun %d/%d", i+1, runs)
	}
	fmt.Fprintln(os.Stderr)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("| poll interval | runs | p50 | p99 | max |\n|---:|---:|---:|---:|---:|\n| %v | %d | %v | %v | %v |\n",
		interval, runs, pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}

func deprovision(ctx context.Context, adminURL, sub string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, adminURL+"/admin/v1/subjects/"+sub+"/deprovision", strings.NewReader(`{"reason":"measurement"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("deprovision: %s", resp.Status)
	}
	return nil
}

func subjectOf(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Sub string `json:"sub"`
	}
	return c.Sub, json.Unmarshal(b, &c)
}
