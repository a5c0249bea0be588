// Package k8sschema checks the Helm chart deploy/helm/keyward against the
// Kubernetes API types: every object helm renders for the chart's ci/ value
// sets must decode strictly (an unknown or duplicate field fails) into its
// k8s.io/api type, or, for the prometheus-operator ServiceMonitor, into the
// fields of monitoring.coreos.com/v1 the chart uses.
//
// It is a module of its own, so that the Kubernetes API modules never enter
// Keyward's module graph; .ci/run runs it as an extra step
// (cd test/k8sschema && go test ./...). It needs helm (on PATH or where
// .ci/run caches it) and skips without it, unless KEYWARD_TEST_REQUIRE_ALL=1.
package k8sschema
