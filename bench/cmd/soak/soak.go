package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/bench/harness"
	"github.com/keyward/keyward/web/verify"
)

// Config is one soak run.
type Config struct {
	// Warmup runs the load before the baseline snapshot; Duration after it.
	Warmup, Duration time.Duration
	// NoSync skips bbolt's fsync.
	NoSync bool
	// Persons cycle through the sign-ins; one of them is deprovisioned
	// every DeprovisionEvery and reinstated a second later.
	Persons          int
	DeprovisionEvery time.Duration
	// Refreshers and Edges are the concurrent refresh and edge-check loops.
	Refreshers, Edges int
	// GCEvery is how often expired records are collected: serve does it
	// every 5 minutes; a soak of minutes compresses that.
	GCEvery time.Duration
	// Log receives progress lines (nil: none).
	Log io.Writer
}

// Snapshot is the process's state with the load stopped and idle
// connections closed, after two garbage collections.
type Snapshot struct {
	Goroutines int
	FDs        int
	HeapBytes  uint64
	// StoreBytes is the size of the store's files; StoreInUse the bytes
	// of the bbolt pages that hold data (bbolt grows its file in 16 MiB
	// steps and never shrinks it, so the file's size is not the measure).
	StoreBytes int64
	StoreInUse int64
	Sessions   int
	// Refreshes is how many refreshes had succeeded when it was taken.
	Refreshes int64
}

// Report is the outcome of a run.
type Report struct {
	Baseline, End Snapshot
	// Ops counts successes per operation; ByDesign the failures a
	// deprovisioning explains; Unexpected every other failure.
	Ops, ByDesign, Unexpected map[string]int64
	FirstUnexpected           string
	Deprovisions, Rotations   int
	// Collected counts the expired records the garbage collections removed
	// (every GCEvery and before each snapshot, as serve's GC loop does).
	Collected int64
	Elapsed   time.Duration
}

// Bounds are the limits Check holds the end snapshot to, relative to the
// baseline: what a process that leaks nothing stays within.
var Bounds = struct {
	Goroutines, FDs int
	HeapFactor      float64
	HeapSlack       uint64
	StoreFactor     float64
	StoreSlack      int64
	// PerRefresh is what each refresh may add to the store: a rotated
	// refresh token stays as a stub for reuse detection until its family's
	// idle expiry (about 2.1 KB of file each, docs/performance.md "After
	// #14/#15"). Nothing else may grow: exchanges, edge checks, sign-ins of
	// the same people and deprovisions store nothing that outlives a GC.
	PerRefresh int64
}{Goroutines: 10, FDs: 10, HeapFactor: 1.5, HeapSlack: 8 << 20, StoreFactor: 1.5, StoreSlack: 2 << 20, PerRefresh: 3 << 10}

// Check returns every bound the run broke, and every unexpected failure.
func (r Report) Check() error {
	var errs []error
	b, e := r.Baseline, r.End
	if e.Goroutines > b.Goroutines+Bounds.Goroutines {
		errs = append(errs, fmt.Errorf("goroutines %d → %d, more than +%d", b.Goroutines, e.Goroutines, Bounds.Goroutines))
	}
	if e.FDs > b.FDs+Bounds.FDs {
		errs = append(errs, fmt.Errorf("open file descriptors %d → %d, more than +%d", b.FDs, e.FDs, Bounds.FDs))
	}
	if float64(e.HeapBytes) > float64(b.HeapBytes)*Bounds.HeapFactor+float64(Bounds.HeapSlack) {
		errs = append(errs, fmt.Errorf("heap %d → %d bytes, more than ×%.1f + %d MiB", b.HeapBytes, e.HeapBytes, Bounds.HeapFactor, Bounds.HeapSlack>>20))
	}
	refreshes := e.Refreshes - b.Refreshes
	if float64(e.StoreInUse) > float64(b.StoreInUse)*Bounds.StoreFactor+float64(Bounds.StoreSlack)+float64(refreshes*Bounds.PerRefresh) {
		errs = append(errs, fmt.Errorf("store in use %d → %d bytes, more than ×%.1f + %d MiB + %d B for each of %d refreshes (file %d → %d bytes)",
			b.StoreInUse, e.StoreInUse, Bounds.StoreFactor, Bounds.StoreSlack>>20, Bounds.PerRefresh, refreshes, b.StoreBytes, e.StoreBytes))
	}
	var n int64
	for _, c := range r.Unexpected {
		n += c
	}
	if n > 0 {
		errs = append(errs, fmt.Errorf("%d requests failed other than by design (%v); first: %s", n, r.Unexpected, r.FirstUnexpected))
	}
	for _, op := range []string{"sign_in", "refresh", "exchange", "edge_check"} {
		if r.Ops[op] == 0 {
			errs = append(errs, fmt.Errorf("no %s succeeded", op))
		}
	}
	if r.Deprovisions == 0 || r.Rotations == 0 {
		errs = append(errs, fmt.Errorf("%d deprovisionings and %d key rotations, want some of each", r.Deprovisions, r.Rotations))
	}
	return errors.Join(errs...)
}

// chain is one refresh family of one person.
type chain struct {
	person  int
	epoch   int64 // the person's deprovisioning count when it was issued
	refresh string
	access  string
}

// soak is the shared state of one run.
type soak struct {
	cfg     Config
	env     *harness.Env
	edgeURL string

	mu      sync.Mutex
	pool    []*chain
	subject map[int]string // person → Keyward subject
	epochs  []int64        // deprovisionings per person
	removed []bool         // deprovisioned now

	counts                              sync.Map     // "ok|op", "design|op", "bad|op" → *atomic.Int64
	collected                           atomic.Int64 // records removed by the garbage collections
	firstBad                            atomic.Value
	deprovisions, rotations, nextPerson atomic.Int64
	transports                          []*http.Transport
	rotateAt                            time.Time
}

const maxPool = 64

func (s *soak) count(kind, op string) {
	v, _ := s.counts.LoadOrStore(kind+"|"+op, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (s *soak) bad(op string, err error) {
	s.count("bad", op)
	s.firstBad.CompareAndSwap(nil, op+": "+err.Error())
}

func (s *soak) transport() *http.Transport {
	t := harness.NewTransport(4)
	s.transports = append(s.transports, t)
	return t
}

// Run soaks a fresh broker on loopback and returns the report (Check
// judges it).
func Run(ctx context.Context, cfg Config) (Report, error) {
	dir, err := os.MkdirTemp("", "keyward-soak-")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(dir)
	env, err := harness.Start(ctx, harness.Options{Dir: dir, NoSync: cfg.NoSync})
	if err != nil {
		return Report{}, err
	}
	defer env.Close()
	s := &soak{cfg: cfg, env: env, subject: map[int]string{}, epochs: make([]int64, cfg.Persons), removed: make([]bool, cfg.Persons)}

	v, err := verify.New(ctx, verify.Config{Issuer: env.BrokerURL, Audiences: []string{harness.ClientID}})
	if err != nil {
		return Report{}, err
	}
	vctx, stopV := context.WithCancel(ctx)
	defer stopV()
	go func() { _ = v.Run(vctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Report{}, err
	}
	edge := &http.Server{Handler: verify.NewHandler(v, verify.Rules{{Path: "/", Audience: harness.ClientID}}, verify.HandlerOptions{}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = edge.Serve(ln) }()
	defer edge.Close()
	s.edgeURL = "http://" + ln.Addr().String() + "/oauth2/auth"

	start := time.Now()
	s.phase(ctx, cfg.Warmup, false)
	base := s.snapshot(ctx, dir)
	s.logf("baseline after %s warm-up: %+v", cfg.Warmup, base)
	s.rotateAt = time.Now().Add(cfg.Duration / 2)
	s.phase(ctx, cfg.Duration, true)
	end := s.snapshot(ctx, dir)
	s.logf("end after %s: %+v", cfg.Duration, end)

	r := Report{Baseline: base, End: end, Ops: map[string]int64{}, ByDesign: map[string]int64{}, Unexpected: map[string]int64{},
		Deprovisions: int(s.deprovisions.Load()), Rotations: int(s.rotations.Load()), Collected: s.collected.Load(), Elapsed: time.Since(start)}
	s.counts.Range(func(k, v any) bool {
		kind, op, _ := strings.Cut(k.(string), "|")
		n := v.(*atomic.Int64).Load()
		switch kind {
		case "ok":
			r.Ops[op] = n
		case "design":
			r.ByDesign[op] = n
		default:
			r.Unexpected[op] = n
		}
		return true
	})
	if f, ok := s.firstBad.Load().(string); ok {
		r.FirstUnexpected = f
	}
	return r, nil
}

func (s *soak) logf(format string, args ...any) {
	if s.cfg.Log != nil {
		fmt.Fprintf(s.cfg.Log, format+"\n", args...)
	}
}

// phase runs every loop for d; rotate adds the key rotation halfway.
func (s *soak) phase(ctx context.Context, d time.Duration, rotate bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	loop := func(f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				f(ctx)
			}
		}()
	}
	signIn := harness.NewSignInClient(s.env.BrokerURL, s.transport())
	loop(func(ctx context.Context) { s.signIn(ctx, signIn) })
	for range s.cfg.Refreshers {
		tr := s.transport()
		loop(func(ctx context.Context) { s.refresh(ctx, tr) })
	}
	for range s.cfg.Edges {
		c := &http.Client{Transport: s.transport(), Timeout: 30 * time.Second}
		loop(func(ctx context.Context) { s.edgeCheck(ctx, c) })
	}
	ex := harness.NewExchanger(s.env.BrokerURL, s.transport(), s.env.MintCIToken(d+time.Hour))
	loop(func(ctx context.Context) {
		if err := ex.Exchange(ctx); err != nil {
			if ctx.Err() == nil {
				s.bad("exchange", err)
			}
			return
		}
		s.count("ok", "exchange")
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.admin(ctx, rotate)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.GCEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.gc(ctx)
			}
		}
	}()
	wg.Wait()
}

// gc removes expired records, as serve's GC loop does.
func (s *soak) gc(ctx context.Context) {
	res, err := s.env.Broker().Store.GarbageCollect(ctx, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			s.bad("gc", err)
		}
		return
	}
	s.collected.Add(int64(res.LoginAttempts + res.Sessions + res.Grants + res.Revocations))
}

func (s *soak) signIn(ctx context.Context, c *harness.SignInClient) {
	s.mu.Lock()
	p := int(s.nextPerson.Add(1)) % s.cfg.Persons
	skip, epoch := s.removed[p], s.epochs[p]
	s.mu.Unlock()
	if skip {
		return
	}
	s.env.Broker().IdPs[0].SetNextClaims(map[string]any{"sub": fmt.Sprintf("soak-person-%d", p), "email": fmt.Sprintf("p%d@example.com", p)})
	tok, err := c.SignIn(ctx, nil)
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case s.deprovisionedSince(p, epoch):
			s.count("design", "sign_in")
		default:
			s.bad("sign_in", err)
		}
		return
	}
	s.count("ok", "sign_in")
	sub, err := subjectOf(tok.AccessToken)
	if err != nil {
		s.bad("sign_in", err)
		return
	}
	s.mu.Lock()
	s.subject[p] = sub
	s.pool = append(s.pool, &chain{person: p, epoch: epoch, refresh: tok.RefreshToken, access: tok.AccessToken})
	var drop *chain
	if len(s.pool) > maxPool {
		drop, s.pool = s.pool[0], s.pool[1:]
	}
	s.mu.Unlock()
	if drop != nil {
		s.revoke(ctx, drop.refresh) // a family the soak no longer uses ends, as a client's sign-out would
	}
}

func (s *soak) deprovisionedSince(p int, epoch int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epochs[p] != epoch || s.removed[p]
}

// take removes a random chain from the pool (nil when empty).
func (s *soak) take() *chain {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pool) == 0 {
		return nil
	}
	i := rand.IntN(len(s.pool))
	c := s.pool[i]
	s.pool[i] = s.pool[len(s.pool)-1]
	s.pool = s.pool[:len(s.pool)-1]
	return c
}

func (s *soak) refresh(ctx context.Context, tr http.RoundTripper) {
	c := s.take()
	if c == nil {
		sleep(ctx, 10*time.Millisecond)
		return
	}
	r := harness.NewRefresher(s.env.BrokerURL, tr, c.refresh)
	err := r.Refresh(ctx)
	switch {
	case err == nil:
		s.count("ok", "refresh")
		c.refresh = r.Token()
		s.mu.Lock()
		s.pool = append(s.pool, c)
		s.mu.Unlock()
	case ctx.Err() != nil:
	case strings.Contains(err.Error(), "status 400") && strings.Contains(err.Error(), "invalid_grant") && s.deprovisionedSince(c.person, c.epoch):
		s.count("design", "refresh") // the family ended with the person's deprovisioning
	case s.deprovisionedSince(c.person, c.epoch):
		// A refresh in flight while the deprovisioning deletes its family:
		// it ends too, but fosite answers invalid_request "Failed to
		// refresh token. Please retry the request." rather than
		// invalid_grant (docs/performance.md, "Soak"). Counted apart.
		s.count("design", "refresh_raced_deprovision")
	default:
		s.bad("refresh", err)
	}
}

func (s *soak) edgeCheck(ctx context.Context, c *http.Client) {
	s.mu.Lock()
	var tok string
	if len(s.pool) > 0 {
		tok = s.pool[rand.IntN(len(s.pool))].access
	}
	s.mu.Unlock()
	if tok == "" {
		sleep(ctx, 10*time.Millisecond)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.edgeURL, nil)
	if err != nil {
		s.bad("edge_check", err)
		return
	}
	req.Header.Set("X-Original-Uri", "/orders/1")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.bad("edge_check", err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.bad("edge_check", fmt.Errorf("status %d", resp.StatusCode))
		return
	}
	s.count("ok", "edge_check")
}

// admin deprovisions one person every DeprovisionEvery (reinstated a
// second later) and, with rotate, rotates the keys once halfway.
func (s *soak) admin(ctx context.Context, rotate bool) {
	b := s.env.Broker()
	tick := time.NewTicker(s.cfg.DeprovisionEvery)
	defer tick.Stop()
	victim := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if rotate && s.rotations.Load() == 0 && time.Now().After(s.rotateAt) {
			if err := b.Keys.RotateNow(ctx); err != nil {
				s.bad("rotate", err)
			} else {
				s.rotations.Add(1)
				s.logf("keys rotated")
			}
		}
		victim = (victim + 1) % s.cfg.Persons
		s.mu.Lock()
		sub, ok := s.subject[victim]
		if ok {
			s.removed[victim] = true
			s.epochs[victim]++
		}
		s.mu.Unlock()
		if !ok {
			continue
		}
		if _, err := b.Broker.Deprovision(ctx, sub, "soak", "soak"); err != nil {
			if ctx.Err() == nil {
				s.bad("deprovision", err)
			}
		} else {
			s.deprovisions.Add(1)
		}
		sleep(ctx, time.Second)
		if _, err := b.Broker.Reinstate(context.WithoutCancel(ctx), sub, "soak", "soak"); err != nil {
			s.bad("reinstate", err)
		}
		s.mu.Lock()
		s.removed[victim] = false
		s.mu.Unlock()
	}
}

func (s *soak) revoke(ctx context.Context, refresh string) {
	form := url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.env.BrokerURL+"/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(harness.ClientID, harness.ClientSecret)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.bad("revoke", err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.bad("revoke", fmt.Errorf("status %d", resp.StatusCode))
		return
	}
	s.count("ok", "revoke")
}

// snapshot waits for the loops' connections to close and measures.
func (s *soak) snapshot(ctx context.Context, dir string) Snapshot {
	for _, t := range s.transports {
		t.CloseIdleConnections()
	}
	s.transports = nil
	http.DefaultClient.CloseIdleConnections()
	sleep(ctx, time.Second) // servers notice the closed connections
	s.gc(ctx)
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	snap := Snapshot{Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		snap.FDs = len(fds)
	}
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				snap.StoreBytes += fi.Size()
			}
		}
		return nil
	})
	snap.StoreInUse = snap.StoreBytes
	if n, err := s.env.Broker().Store.SpaceInUse(ctx); err == nil {
		snap.StoreInUse = n
	}
	if v, ok := s.counts.Load("ok|refresh"); ok {
		snap.Refreshes = v.(*atomic.Int64).Load()
	}
	if sess, err := s.env.Broker().Broker.Sessions(ctx, ""); err == nil {
		snap.Sessions = len(sess)
	}
	return snap
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// subjectOf reads the sub of a JWT without verifying it (the soak's own
// bookkeeping; the edge verifier verifies).
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
