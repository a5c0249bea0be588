package helmchart

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyward/keyward/test/internal/program"
)

// chartDir is the chart, from this package's folder.
const chartDir = "../../deploy/helm/keyward"

// findHelm returns the helm binary: on PATH, or the newest that .ci/run
// cached; it skips the test (fails it under KEYWARD_TEST_REQUIRE_ALL=1)
// when there is none.
func findHelm(t *testing.T) string {
	t.Helper()
	var cached []string
	if dir, err := os.UserCacheDir(); err == nil {
		cached, _ = filepath.Glob(filepath.Join(dir, "keyward-ci", "tools", "helm-v*"))
		slices.Reverse(cached)
	}
	return program.Find(t, "helm", "GOBIN=DIR go install helm.sh/helm/v4/cmd/helm@VERSION (.ci/run does)", cached...)
}

// helm runs the helm binary with args on the chart and returns its standard
// output, or an error carrying its standard error.
func helm(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// object is one rendered manifest: its header, and the document to decode
// further.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	node *yaml.Node
}

// decode decodes the whole object into v.
func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
	}
}

// render renders the chart as release "kw" with the values files and --set
// arguments, and returns its objects.
func render(t *testing.T, bin string, values []string, set ...string) []object {
	t.Helper()
	args := []string{"template", "kw", chartDir, "--namespace", "sso"}
	for _, v := range values {
		args = append(args, "--values", filepath.Join(chartDir, v))
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, bin, args...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var objs []object
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template printed YAML that does not parse: %v\n%s", err, out)
		}
		if len(n.Content) == 0 {
			continue // an empty document between ---
		}
		o := object{node: &n}
		if err := n.Decode(&o); err != nil {
			t.Fatalf("helm template: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("an object without apiVersion, kind or name:\n%s", out)
		}
		objs = append(objs, o)
	}
	return objs
}

// ofKind returns the objects of kind.
func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}
