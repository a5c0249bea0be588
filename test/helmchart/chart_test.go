package helmchart

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/test/internal/program"
)

// The Secrets the value sets name, with the files each holds. The values
// are what the tests look for in ConfigMaps: none may appear there.
var secrets = map[string]map[string]string{
	"keyward": {
		"session-secret":       "c2Vzc2lvbi1zZWNyZXQtMDEyMzQ1Njc4OS0wMTIzNDU2Nzg5LWFiY2RlZg==",
		"kek":                  "a2V5LWVuY3J5cHRpb24ta2V5LTAxMjM0NTY3ODkwMTI=", // 32 bytes
		"dsn":                  "postgres://keyward:pg-password-4Xq9@postgres.db.svc:5432/keyward?sslmode=verify-full",
		"upstream-corp":        "upstream-secret-7Hd2kQ-0123456789-0123456789",
		"client-shop":          "shop-client-secret-Zp3r-0123456789-0123456789",
		"client-edge-verifier": "edge-verifier-secret-Lm8w-0123456789-0123456789",
	},
	"keyward-verifier": {
		"client-edge-verifier": "edge-verifier-secret-Lm8w-0123456789-0123456789",
	},
}

// valueSet is one way to install the chart, and what it must render.
type valueSet struct {
	name     string
	values   []string // files under the chart folder
	set      []string // --set arguments
	broker   bool     // a broker Deployment
	verifier bool     // a verifier Deployment
	store    string   // bolt or postgres
	replicas int      // the broker's
	// migration: the broker's migrate step (initContainer, job or "").
	migration string
}

var valueSets = []valueSet{
	{name: "bolt", values: []string{"ci/bolt-values.yaml"}, broker: true, store: "bolt", replicas: 1},
	{name: "postgres with 3 replicas and the verifier", values: []string{"ci/postgres-values.yaml"},
		broker: true, verifier: true, store: "postgres", replicas: 3, migration: "initContainer"},
	{name: "postgres migrated by a job", values: []string{"ci/postgres-values.yaml"}, set: []string{"broker.store.postgres.migration=job"},
		broker: true, verifier: true, store: "postgres", replicas: 3, migration: "job"},
	{name: "verifier only", values: []string{"ci/verifier-values.yaml"}, verifier: true},
}

// TestChart lints and renders the chart for each value set and checks
// what it renders.
func TestChart(t *testing.T) {
	bin := findHelm(t)
	program.Reads(t, chartDir, "../../go.mod", "../../go.sum", "../../cmd", "../../broker", "../../federation",
		"../../keys", "../../store", "../../web")
	keyward := buildKeyward(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir}
			for _, v := range vs.values {
				args = append(args, "--values", filepath.Join(chartDir, v))
			}
			for _, s := range vs.set {
				args = append(args, "--set", s)
			}
			if out, err := helm(t, bin, args...); err != nil {
				t.Errorf("helm lint --strict: %v\n%s", err, out)
			}
			objs := render(t, bin, vs.values, vs.set...)
			vs.check(t, objs, keyward)
		})
	}
}

func (vs valueSet) check(t *testing.T, objs []object, keyward string) {
	t.Helper()
	deployments := map[string]deployment{} // by component
	var pods []podSpec
	podLabels := map[string]map[string]string{} // by component
	for _, o := range ofKind(objs, "Deployment") {
		var d deployment
		o.decode(t, &d)
		component := o.Metadata.Labels["app.kubernetes.io/component"]
		deployments[component] = d
		pods = append(pods, d.Spec.Template.Spec)
		podLabels[component] = d.Spec.Template.Metadata.Labels
		if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
			t.Errorf("Deployment %s: selector %v does not select its pods %v", o.Metadata.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
		}
	}
	jobs := ofKind(objs, "Job")
	for _, o := range jobs {
		var j job
		o.decode(t, &j)
		pods = append(pods, j.Spec.Template.Spec)
		if j.Spec.Template.Spec.RestartPolicy != "Never" && j.Spec.Template.Spec.RestartPolicy != "OnFailure" {
			t.Errorf("Job %s: restartPolicy %q", o.Metadata.Name, j.Spec.Template.Spec.RestartPolicy)
		}
	}
	if got := slices.Sorted(maps.Keys(deployments)); !slices.Equal(got, vs.components()) {
		t.Fatalf("Deployments of components %v, want %v", got, vs.components())
	}
	for _, p := range pods {
		checkPod(t, p, objs)
	}
	if vs.broker {
		vs.checkBroker(t, deployments["broker"], objs)
	}
	if vs.verifier {
		checkProbes(t, deployments["verifier"].Spec.Template.Spec.Containers[0], "/healthz", "/healthz")
	}
	checkServices(t, objs, podLabels)
	checkSelectors(t, objs, podLabels, vs)
	checkConfigMaps(t, objs, deployments, keyward)
}

func (vs valueSet) components() []string {
	var c []string
	if vs.broker {
		c = append(c, "broker")
	}
	if vs.verifier {
		c = append(c, "verifier")
	}
	return c
}

// checkPod holds every pod to the security promises: the image's non-root
// user, a read-only root, no privilege escalation, no capabilities, no
// service account token, resources, and mounts of volumes that exist.
func checkPod(t *testing.T, p podSpec, objs []object) {
	t.Helper()
	sc := p.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 || sc.FSGroup == nil {
		t.Errorf("pod securityContext %+v, want runAsNonRoot, a non-zero runAsUser and fsGroup", sc)
	}
	if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
		t.Error("pod mounts a service account token; Keyward never talks to the Kubernetes API")
	}
	volumes := map[string]volume{}
	for _, v := range p.Volumes {
		volumes[v.Name] = v
		switch {
		case v.ConfigMap != nil && !slices.ContainsFunc(ofKind(objs, "ConfigMap"), func(o object) bool { return o.Metadata.Name == v.ConfigMap.Name }):
			t.Errorf("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
		case v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o7 != 0):
			t.Errorf("volume %s: Secret %s mounted with defaultMode %v, want none for others", v.Name, v.Secret.SecretName, v.Secret.DefaultMode)
		case v.Secret != nil && secrets[v.Secret.SecretName] == nil:
			t.Errorf("volume %s: Secret %s is not the one the values name", v.Name, v.Secret.SecretName)
		}
	}
	for _, c := range append(slices.Clone(p.InitContainers), p.Containers...) {
		s := c.SecurityContext
		if s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation ||
			s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem ||
			s.RunAsNonRoot == nil || !*s.RunAsNonRoot ||
			(s.Privileged != nil && *s.Privileged) ||
			!slices.Equal(s.Capabilities.Drop, []string{"ALL"}) || len(s.Capabilities.Add) > 0 {
			t.Errorf("container %s: securityContext %+v, want no privilege escalation, read-only root, non-root, not privileged, capabilities dropped", c.Name, s)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %s: resources %+v, want cpu and memory requests and a memory limit", c.Name, c.Resources)
		}
		if !strings.HasPrefix(c.Image, "registry.example.com/keyward:1.0.0") {
			t.Errorf("container %s: image %q, want the values' registry.example.com/keyward:1.0.0", c.Name, c.Image)
		}
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if !ok {
				t.Errorf("container %s mounts %s, which is no volume of the pod", c.Name, m.Name)
			}
			if (v.ConfigMap != nil || v.Secret != nil) && !m.ReadOnly {
				t.Errorf("container %s mounts %s read-write", c.Name, m.Name)
			}
		}
	}
}

// checkProbes checks c's liveness and readiness probes: HTTP GETs of the
// paths on a port c declares.
func checkProbes(t *testing.T, c container, liveness, readiness string) {
	t.Helper()
	for _, p := range []struct {
		name, want string
		probe      *probe
	}{{"livenessProbe", liveness, c.LivenessProbe}, {"readinessProbe", readiness, c.ReadinessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("container %s has no %s httpGet", c.Name, p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.want {
			t.Errorf("container %s: %s path %q, want %q", c.Name, p.name, p.probe.HTTPGet.Path, p.want)
		}
		if !slices.ContainsFunc(c.Ports, func(port struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		},
		) bool {
			return port.Name == p.probe.HTTPGet.Port
		}) {
			t.Errorf("container %s: %s port %q is not a port it declares", c.Name, p.name, p.probe.HTTPGet.Port)
		}
	}
}

// checkBroker checks what the store decides: replicas, strategy, the
// volume, the migration step.
func (vs valueSet) checkBroker(t *testing.T, d deployment, objs []object) {
	t.Helper()
	pod := d.Spec.Template.Spec
	checkProbes(t, pod.Containers[0], "/healthz", "/readyz")
	if got := pod.Containers[0].Args; !slices.Equal(got, []string{"serve", "-c", "/etc/keyward/keyward.yaml"}) {
		t.Errorf("broker args %q, want serve -c /etc/keyward/keyward.yaml", got)
	}
	if d.Spec.Replicas != vs.replicas {
		t.Errorf("broker replicas %d, want %d", d.Spec.Replicas, vs.replicas)
	}
	pvcs := ofKind(objs, "PersistentVolumeClaim")
	var claim string
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	switch vs.store {
	case "bolt":
		if d.Spec.Strategy.Type != "Recreate" {
			t.Errorf("bolt broker strategy %q, want Recreate (one process holds the file)", d.Spec.Strategy.Type)
		}
		if len(pvcs) != 1 || claim != pvcs[0].Metadata.Name {
			t.Errorf("bolt broker mounts claim %q; rendered claims %d, want the one rendered", claim, len(pvcs))
		}
	case "postgres":
		if d.Spec.Strategy.Type != "RollingUpdate" {
			t.Errorf("postgres broker strategy %q, want RollingUpdate", d.Spec.Strategy.Type)
		}
		if len(pvcs) != 0 || claim != "" {
			t.Errorf("postgres broker has %d claims, mounts %q; want none", len(pvcs), claim)
		}
	}
	migrate := []string{"migrate", "-c", "/etc/keyward/keyward.yaml"}
	var initMigrates, jobMigrates int
	for _, c := range pod.InitContainers {
		if slices.Equal(c.Args, migrate) {
			initMigrates++
		}
	}
	for _, o := range ofKind(objs, "Job") {
		var j job
		o.decode(t, &j)
		if slices.Equal(j.Spec.Template.Spec.Containers[0].Args, migrate) {
			jobMigrates++
			if hook := o.Metadata.Annotations["helm.sh/hook"]; hook != "pre-install,pre-upgrade" {
				t.Errorf("migrate Job: helm.sh/hook %q, want pre-install,pre-upgrade", hook)
			}
			for _, v := range j.Spec.Template.Spec.Volumes {
				if v.ConfigMap == nil {
					continue
				}
				for _, cm := range ofKind(objs, "ConfigMap") {
					if cm.Metadata.Name == v.ConfigMap.Name && cm.Metadata.Annotations["helm.sh/hook"] == "" {
						t.Errorf("migrate Job mounts ConfigMap %s, which is not a hook: it does not exist yet at pre-install", cm.Metadata.Name)
					}
				}
			}
		}
	}
	want := map[string][2]int{"initContainer": {1, 0}, "job": {0, 1}, "": {0, 0}}[vs.migration]
	if initMigrates != want[0] || jobMigrates != want[1] {
		t.Errorf("migrate init containers %d, Jobs %d; want %d and %d (migration %q)", initMigrates, jobMigrates, want[0], want[1], vs.migration)
	}
}

// checkServices checks that every Service selects a rendered pod template
// and targets a port its containers declare.
func checkServices(t *testing.T, objs []object, podLabels map[string]map[string]string) {
	t.Helper()
	for _, o := range ofKind(objs, "Service") {
		var s service
		o.decode(t, &s)
		component := s.Spec.Selector["app.kubernetes.io/component"]
		labels, ok := podLabels[component]
		if !ok || !subset(s.Spec.Selector, labels) {
			t.Errorf("Service %s selects %v, which no rendered pod template carries", o.Metadata.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort != "http" && p.TargetPort != "metrics" {
				t.Errorf("Service %s targets port %q, want http or metrics", o.Metadata.Name, p.TargetPort)
			}
		}
	}
}

// checkSelectors checks PodDisruptionBudgets (present exactly where more
// than one replica serves), NetworkPolicies and the ServiceMonitor.
func checkSelectors(t *testing.T, objs []object, podLabels map[string]map[string]string, vs valueSet) {
	t.Helper()
	pdbs := map[string]bool{}
	for _, o := range ofKind(objs, "PodDisruptionBudget") {
		var s selectorSpec
		o.decode(t, &s)
		component := s.Spec.Selector.MatchLabels["app.kubernetes.io/component"]
		if !subset(s.Spec.Selector.MatchLabels, podLabels[component]) {
			t.Errorf("PodDisruptionBudget %s selects %v, which no pod template carries", o.Metadata.Name, s.Spec.Selector.MatchLabels)
		}
		pdbs[component] = true
	}
	if want := vs.store == "postgres" && vs.replicas > 1; pdbs["broker"] != want {
		t.Errorf("broker PodDisruptionBudget rendered: %v, want %v", pdbs["broker"], want)
	}
	if pdbs["verifier"] != vs.verifier {
		t.Errorf("verifier PodDisruptionBudget rendered: %v, want %v (more than one replica)", pdbs["verifier"], vs.verifier)
	}
	for _, o := range ofKind(objs, "NetworkPolicy") {
		var s selectorSpec
		o.decode(t, &s)
		component := s.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"]
		if !subset(s.Spec.PodSelector.MatchLabels, podLabels[component]) {
			t.Errorf("NetworkPolicy %s selects %v, which no pod template carries", o.Metadata.Name, s.Spec.PodSelector.MatchLabels)
		}
	}
	for _, o := range ofKind(objs, "ServiceMonitor") {
		var s selectorSpec
		o.decode(t, &s)
		n := 0
		for _, svc := range ofKind(objs, "Service") {
			if subset(s.Spec.Selector.MatchLabels, svc.Metadata.Labels) {
				if !strings.HasSuffix(svc.Metadata.Name, "-metrics") {
					t.Errorf("ServiceMonitor %s selects Service %s, which is not a metrics Service", o.Metadata.Name, svc.Metadata.Name)
				}
				n++
			}
		}
		if n == 0 {
			t.Errorf("ServiceMonitor %s selects no Service", o.Metadata.Name)
		}
	}
}

// checkConfigMaps checks that no ConfigMap holds a secret, and that the
// keyward.yaml and verify.yaml they hold pass `keyward check-config` and
// `keyward verify --check` with the Secrets' files where the pods mount
// them (the paths rewritten into a temporary folder) and the environment
// the Deployments set.
func checkConfigMaps(t *testing.T, objs []object, deployments map[string]deployment, keyward string) {
	t.Helper()
	for _, o := range ofKind(objs, "ConfigMap") {
		var cm configMap
		o.decode(t, &cm)
		for file, content := range cm.Data {
			for name, files := range secrets {
				for key, secret := range files {
					if strings.Contains(content, secret) {
						t.Errorf("ConfigMap %s %s holds the value of Secret %s key %s", o.Metadata.Name, file, name, key)
					}
				}
			}
			component := map[string]string{"keyward.yaml": "broker", "verify.yaml": "verifier"}[file]
			if component == "" {
				t.Errorf("ConfigMap %s holds %s, want keyward.yaml or verify.yaml", o.Metadata.Name, file)
				continue
			}
			checkConfig(t, keyward, file, content, deployments[component].Spec.Template.Spec)
		}
	}
}

// checkConfig runs keyward's own check on the config file content as pod
// would read it.
func checkConfig(t *testing.T, keyward, file, content string, pod podSpec) {
	t.Helper()
	dir := t.TempDir()
	c := pod.Containers[0]
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		if ref := e.ValueFrom.SecretKeyRef; ref.Key != "" {
			env = append(env, e.Name+"="+secrets[ref.Name][ref.Key])
		} else {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			if m.MountPath != "/etc/keyward/secrets" {
				t.Errorf("Secret %s mounted at %s; the configs name /etc/keyward/secrets", v.Secret.SecretName, m.MountPath)
			}
			writeFiles(t, filepath.Join(dir, "secrets"), secrets[v.Secret.SecretName])
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer("/etc/keyward/secrets/", dir+"/secrets/", "/var/lib/keyward/", dir+"/data/").Replace(content)
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"check-config", "-c", path}
	if file == "verify.yaml" {
		args = []string{"verify", "--check", "-c", path}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, keyward, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("keyward %s on the rendered %s: %v\n%s\n%s", strings.Join(args[:len(args)-1], " "), file, err, out.String(), content)
	}
	if strings.Contains(out.String(), "warning") {
		t.Errorf("keyward %s on the rendered %s warns:\n%s", args[0], file, out.String())
	}
}

// writeFiles writes files (name → content) into dir, readable by their
// owner only.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// buildKeyward builds the keyward binary into a temporary folder.
func buildKeyward(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyward")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/keyward")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/keyward: %v\n%s", err, out)
	}
	return bin
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestChartRefuses renders values the chart must refuse, and checks that
// helm fails with the reason.
func TestChartRefuses(t *testing.T) {
	bin := findHelm(t)
	program.Reads(t, chartDir)
	bolt := []string{"ci/bolt-values.yaml"}
	tests := []struct {
		name   string
		values []string
		set    []string
		want   string
	}{
		{"bolt with two replicas", bolt, []string{"broker.replicas=2"}, "runs exactly one replica"},
		{"a literal upstream secret", bolt, []string{"broker.config.upstreams[0].id=corp", "broker.config.upstreams[0].clientSecret=hunter2hunter2"}, "a secret in values would land in a ConfigMap"},
		{"a literal client secret", bolt, []string{"broker.config.clients[0].id=shop", "broker.config.clients[0].secret=hunter2hunter2"}, "broker.config.clients[0].secret"},
		{"listen in the config", bolt, []string{"broker.config.listen=127.0.0.1:5556"}, "broker.config.listen: the chart sets it"},
		{"the store in the config", bolt, []string{"broker.config.store.type=bolt"}, "broker.config.store: the chart sets it"},
		{"an unknown store", bolt, []string{"broker.store.type=mysql"}, `broker.store.type: "mysql" is not bolt or postgres`},
		{"an unknown migration", []string{"ci/postgres-values.yaml"}, []string{"broker.store.postgres.migration=sometimes"}, "is not initContainer, job or none"},
		{"no Secret", bolt, []string{"broker.existingSecret="}, "broker.existingSecret"},
		{"listen in the verifier's config", []string{"ci/verifier-values.yaml"}, []string{"verifier.config.listen=0.0.0.0:1"}, "verifier.config.listen: the chart sets it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", "kw", chartDir}
			for _, v := range tt.values {
				args = append(args, "--values", filepath.Join(chartDir, v))
			}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, bin, args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template with %v: error %v, want one containing %q\n%.400s", tt.set, err, tt.want, out)
			}
		})
	}
}
