package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyward/keyward/store"
)

// searchBenchFirst are the first names of the seeded people: a one-name
// prefix matches 1/len of them.
var searchBenchFirst = []string{
	"Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
	"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoe",
}

// SeedSubjects stores n people (IDs s-000000…, emails
// first.lastNNNNNN@example.com, 1/20 of them per first name, upstream
// subjects 00uNNNNNN, two upstreams) in transactions of 1,000 and 1,000
// audit events, one per person of the first 1,000. It is the population
// of BenchSearch.
func SeedSubjects(tb testing.TB, s store.Store, n int) {
	tb.Helper()
	ctx := tb.Context()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < n; start += 1000 {
		var b store.Batch
		for i := start; i < min(start+1000, n); i++ {
			first := searchBenchFirst[i%len(searchBenchFirst)]
			sub := store.Subject{
				ID:              fmt.Sprintf("s-%06d", i),
				UpstreamID:      []string{"corp", "partner"}[i%2],
				UpstreamSubject: fmt.Sprintf("00u%06d", i),
				Email:           fmt.Sprintf("%s.last%06d@example.com", first, i),
				Name:            fmt.Sprintf("%s Last%06d", first, i),
				CreatedAt:       at,
				UpdatedAt:       at,
			}
			b.SubjectUpserts = append(b.SubjectUpserts, store.SubjectUpsert{
				ID: sub.ID, Create: func() store.Subject { return sub },
				Update: func(x store.Subject) (store.Subject, error) { return x, nil },
			})
		}
		if _, err := s.Apply(ctx, b); err != nil {
			tb.Fatalf("seed subjects: Apply() = %v", err)
		}
	}
	for i := range min(n, 1000) {
		_, err := s.AppendAudit(ctx, store.AuditEvent{At: at, Actor: "admin-api", Action: "reinstate",
			Target: fmt.Sprintf("s-%06d", i), Reason: "seed"})
		if err != nil {
			tb.Fatalf("seed audit: AppendAudit() = %v", err)
		}
	}
}

// BenchSearch measures the console's queries on a store seeded by
// SeedSubjects with n people, one page of 50 each: an email prefix that
// names one person, a first name (n/20 matches), a single letter (the
// worst case: about a third of the people match on some field), the first
// page of everyone, and one person's audit events. Besides ns/op it reports
// the 99th percentile (p99-ms) of the b.N calls. It asserts nothing about
// speed; a store error or an empty result fails the benchmark.
func BenchSearch(b *testing.B, s store.Store, n int) {
	queries := []struct {
		name   string
		prefix string
	}{
		{"OnePerson", fmt.Sprintf("grace.last%06d@", n/2+6)},
		{"FirstName", "olivia"},
		{"OneLetter", "p"},
		{"Everyone", ""},
	}
	for _, q := range queries {
		b.Run("Subjects/"+q.name, func(b *testing.B) {
			benchP99(b, func() int {
				page, err := s.SearchSubjects(b.Context(), store.SubjectQuery{Prefix: q.prefix, Limit: 50})
				if err != nil {
					b.Fatalf("SearchSubjects(%q) = %v", q.prefix, err)
				}
				return len(page.Subjects)
			})
		})
	}
	b.Run("AuditByPerson", func(b *testing.B) {
		benchP99(b, func() int {
			page, err := s.QueryAudit(b.Context(), store.AuditQuery{Target: "s-000500", Limit: 50})
			if err != nil {
				b.Fatalf("QueryAudit() = %v", err)
			}
			return len(page.Events)
		})
	})
}

// benchP99 runs call b.N times and reports the 99th percentile latency.
func benchP99(b *testing.B, call func() int) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if call() == 0 {
			b.Fatal("the query found nothing")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[(len(lat)*99)/100])/float64(time.Millisecond), "p99-ms")
}
