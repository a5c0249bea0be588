package k8sschema

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart, from this folder.
const chartDir = "../../deploy/helm/keyward"

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// chart renders (the CRD's Go types live in prometheus-operator's module,
// which this test does not pull in).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// types are the objects the chart may render, by apiVersion and kind.
var types = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/PersistentVolumeClaim":                func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                            func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
}

// TestChartObjectsDecodeStrictly renders the chart for each value set and
// decodes every object strictly into its API type.
func TestChartObjectsDecodeStrictly(t *testing.T) {
	helm := findHelm(t)
	// helm reads the chart; reading it here too makes go test's cache
	// rerun this test when the chart changes.
	err := filepath.WalkDir(chartDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			_, err = os.ReadFile(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sets := []struct {
		name   string
		values string
		set    []string
	}{
		{"bolt", "ci/bolt-values.yaml", nil},
		{"postgres", "ci/postgres-values.yaml", nil},
		{"postgres, migration job", "ci/postgres-values.yaml", []string{"broker.store.postgres.migration=job"}},
		{"verifier only", "ci/verifier-values.yaml", nil},
		{"defaults", "values.yaml", nil},
	}
	for _, vs := range sets {
		t.Run(vs.name, func(t *testing.T) {
			args := []string{"template", "kw", chartDir, "--values", filepath.Join(chartDir, vs.values)}
			for _, s := range vs.set {
				args = append(args, "--set", s)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, helm, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr.String())
			}
			var kinds []string
			for _, doc := range strings.Split(stdout.String(), "\n---") {
				if strings.TrimSpace(stripComments(doc)) == "" {
					continue
				}
				var tm metav1.TypeMeta
				if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
					t.Fatalf("object does not parse: %v\n%s", err, doc)
				}
				key := tm.APIVersion + "/" + tm.Kind
				newObj, ok := types[key]
				if !ok {
					t.Errorf("%s is not a type the chart is checked against:\n%s", key, doc)
					continue
				}
				if err := yaml.UnmarshalStrict([]byte(doc), newObj()); err != nil {
					t.Errorf("%s does not decode strictly: %v\n%s", key, err, doc)
				}
				kinds = append(kinds, tm.Kind)
			}
			if !slices.Contains(kinds, "Deployment") {
				t.Errorf("no Deployment rendered; kinds %v", kinds)
			}
		})
	}
}

// stripComments drops the comment lines of a YAML document (helm's
// "# Source:" headers), to tell an empty document apart.
func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// findHelm returns helm from PATH or from .ci/run's cache, or skips the
// test (fails it under KEYWARD_TEST_REQUIRE_ALL=1). The main module's
// test/internal/program cannot be imported from this module.
func findHelm(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if dir, err := os.UserCacheDir(); err == nil {
		cached, _ := filepath.Glob(filepath.Join(dir, "keyward-ci", "tools", "helm-v*"))
		if len(cached) > 0 {
			return cached[len(cached)-1]
		}
	}
	if os.Getenv("KEYWARD_TEST_REQUIRE_ALL") == "1" {
		t.Fatal("helm not found (.ci/run installs it) and KEYWARD_TEST_REQUIRE_ALL=1")
	}
	t.Skip("helm not found; install it to run this test: GOBIN=DIR go install helm.sh/helm/v4/cmd/helm@VERSION (.ci/run does)")
	return ""
}
