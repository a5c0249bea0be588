package fakesrv

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recordTB records what Start does with it, instead of stopping the test.
type recordTB struct {
	cleanups []func()
	fatal    string
}

func (r *recordTB) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }
func (r *recordTB) Helper()                           {}
func (r *recordTB) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

// server is the smallest thing Start serves.
type server struct{ h http.Handler }

func (s *server) Handler() http.Handler { return s.h }

func TestStartServesAtTheURLNewAtSaw(t *testing.T) {
	var url string
	s := Start(t, "test", func(u string) (*server, error) {
		url = u
		return &server{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "served "+r.URL.Path)
		})}, nil
	})
	if s == nil {
		t.Fatal("Start returned nil for a server newAt built")
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("newAt saw %q, want http://127.0.0.1:port", url)
	}
	resp, err := http.Get(url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "served /x" {
		t.Fatalf("GET = %q, want the server's handler's answer", body)
	}
}

func TestStartFailsAndClosesWhenNewAtFails(t *testing.T) {
	tb := &recordTB{}
	var url string
	s := Start(tb, "fakex.New", func(u string) (*server, error) {
		url = u
		return &server{http.NotFoundHandler()}, errors.New("bad config")
	})
	if s != nil {
		t.Fatal("Start returned a server although newAt failed")
	}
	if tb.fatal != "fakex.New: bad config" {
		t.Fatalf("Fatalf got %q, want %q", tb.fatal, "fakex.New: bad config")
	}
	if len(tb.cleanups) != 0 {
		t.Fatalf("%d cleanups registered for a server that never started", len(tb.cleanups))
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s answered %d; the listener should be closed", url, resp.StatusCode)
	}
}

func TestStartClosesAtCleanup(t *testing.T) {
	tb := &recordTB{}
	var url string
	Start(tb, "test", func(u string) (*server, error) {
		url = u
		return &server{http.NotFoundHandler()}, nil
	})
	if tb.fatal != "" || len(tb.cleanups) != 1 {
		t.Fatalf("fatal %q, %d cleanups; want none and one", tb.fatal, len(tb.cleanups))
	}
	tb.cleanups[0]()
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s answered %d after cleanup", url, resp.StatusCode)
	}
}

func TestCounters(t *testing.T) {
	c := NewCounters("a", "b")
	h := c.Count("a", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for range 3 {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != http.StatusTeapot {
			t.Fatalf("wrapped handler did not run: status %d", rec.Code)
		}
	}
	for name, want := range map[string]int64{"a": 3, "b": 0} {
		if got, ok := c.Get(name); !ok || got != want {
			t.Errorf("Get(%q) = %d, %v; want %d, true", name, got, ok, want)
		}
	}
	if got, ok := c.Get("c"); ok || got != 0 {
		t.Errorf("Get(unknown) = %d, %v; want 0, false", got, ok)
	}
	defer func() {
		if recover() == nil {
			t.Error("Count with an unknown name did not panic")
		}
	}()
	c.Count("c", h)
}
