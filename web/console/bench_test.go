package console_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/store/storetest"
	"github.com/keyward/keyward/web/console"
)

// BenchmarkPeopleSearch measures the server time of the console's people
// page (staff session check, the bbolt search, the template) over 100,000
// people seeded by storetest.SeedSubjects, calling the console's handler
// directly with a signed-in admin's cookies. Besides ns/op it reports the
// 99th percentile (p99-ms). It asserts nothing about speed; a page that is
// not 200 with the expected person fails it.
func BenchmarkPeopleSearch(b *testing.B) {
	const people = 100_000
	var h http.Handler
	e := consoleEnvWith(b, console.Config{AdminGroups: []string{"admins"}}, envOptions{handler: &h})
	storetest.SeedSubjects(b, e.Store, people)
	alice, status, _ := signIn(b, e, "alice", "alice-demo")
	if status != http.StatusOK {
		b.Fatalf("alice's sign-in = %d", status)
	}
	u, _ := url.Parse(e.Issuer + "/console/")
	cookies := alice.Jar.Cookies(u)
	if len(cookies) == 0 {
		b.Fatal("no console cookie after alice's sign-in")
	}
	for _, q := range []struct{ name, prefix, want string }{
		{"OnePerson", "grace.last050006@", "Grace Last050006"},
		{"FirstName", "olivia", "Olivia Last"},
		{"OneLetter", "p", "Last"},
		{"Everyone", "", "Alice Last000000"},
	} {
		b.Run(q.name, func(b *testing.B) {
			target := "/console/?" + url.Values{"q": {q.prefix}}.Encode()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				req := httptest.NewRequest(http.MethodGet, e.Issuer+target, nil)
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(rec, req)
				lat = append(lat, time.Since(start))
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), q.want) {
					b.Fatalf("GET %s = %d, want 200 with %q:\n%.600s", target, rec.Code, q.want, rec.Body.String())
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[(len(lat)*99)/100])/float64(time.Millisecond), "p99-ms")
		})
	}
}
