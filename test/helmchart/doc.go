// Package helmchart tests the Helm chart deploy/helm/keyward without a
// cluster: the real helm CLI lints and renders it for the value sets in
// its ci/ folder (one broker on bbolt; three on PostgreSQL with the
// verifier; the verifier alone), and the tests read every rendered object
// and check the invariants the chart promises: non-root pods with a
// read-only root and no privilege escalation, probes on /healthz and
// /readyz, resources, the strategy and replicas each store allows, the
// migration step, PodDisruptionBudgets, Services and selectors that meet
// their pods, no secret in a ConfigMap, and a keyward.yaml and verify.yaml
// that `keyward check-config` and `keyward verify --check` accept. Values
// the chart must refuse are refused with their reason.
//
// helm is found on PATH or where .ci/run caches it
// ($XDG_CACHE_HOME/keyward-ci/tools/helm-VERSION); without it the tests
// skip, unless KEYWARD_TEST_REQUIRE_ALL=1 (CI), which makes it a failure.
// Its code is all in _test.go files.
package helmchart
