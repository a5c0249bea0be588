package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/web/verify"
)

// TestMeasureSCIMDeactivationToEdge is a measurement, not a check: with
// KEYWARD_MEASURE_SCIM=N it deactivates N people through SCIM (Okta's PATCH)
// and logs, per person, the time from the PATCH's answer to the first
// refusal of their unexpired access token by an edge verifier polling the
// revocation feed every second (over HTTP on loopback), with p50, p99 and
// max. The deactivations fall at random phases of the polls. It is a test because the e2e environment is built on *testing.T;
// without the variable it is skipped.
func TestMeasureSCIMDeactivationToEdge(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KEYWARD_MEASURE_SCIM"))
	if n <= 0 {
		t.Skip("a measurement: set KEYWARD_MEASURE_SCIM to the number of deactivations (e.g. 50)")
	}
	e := newSCIMEnv(t)
	v := runVerifier(t, e.env, time.Second)
	var took []time.Duration
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		body := strings.NewReplacer("bob@example.com", name+"@example.com", "demo-bob", "demo-"+name).Replace(oktaCreateBob)
		id := e.mustSCIM(t, http.StatusCreated, http.MethodPost, "/Users", body).body["id"].(string)
		at, _ := e.signInAs(t, name)
		if _, err := v.Verify(t.Context(), at); err != nil {
			t.Fatalf("token before deactivation: %v", err)
		}
		// A random phase against the verifier's polls: right after a poll
		// the deactivation would always wait a whole interval.
		time.Sleep(rand.N(time.Second))
		e.mustSCIM(t, http.StatusOK, http.MethodPatch, "/Users/"+id, oktaDeactivate)
		start := time.Now()
		for {
			_, err := v.Verify(t.Context(), at)
			if errors.Is(err, verify.ErrRevoked) {
				break
			}
			if err != nil || time.Since(start) > 10*time.Second {
				t.Fatalf("token after deactivation: %v after %s", err, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[int(p*float64(len(took)-1)+0.5)] }
	t.Logf("SCIM deactivation to first refusal at the edge, feed interval 1s, %d runs: p50 %s, p99 %s, max %s",
		len(took), q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}
