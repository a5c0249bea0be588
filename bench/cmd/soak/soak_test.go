package main

import (
	"os"
	"testing"
	"time"
)

// TestSoakShort is a 40-second soak (10 s warm-up, 30 s measured): set
// KEYWARD_TEST_SOAK=1 to run it (.ci/run does). It asserts only the
// run's own verdict: nothing leaked beyond Bounds and no request failed
// except by design.
func TestSoakShort(t *testing.T) {
	if os.Getenv("KEYWARD_TEST_SOAK") == "" {
		t.Skip("a 40 s soak; set KEYWARD_TEST_SOAK=1 to run it")
	}
	r, err := Run(t.Context(), defaultConfig(10*time.Second, 30*time.Second, true, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ops %v, by design %v, deprovisions %d, rotations %d; baseline %+v, end %+v",
		r.Ops, r.ByDesign, r.Deprovisions, r.Rotations, r.Baseline, r.End)
	if err := r.Check(); err != nil {
		t.Error(err)
	}
}
