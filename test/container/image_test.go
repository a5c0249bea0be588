package container

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyward/keyward/test/internal/program"
)

// repoRoot is the repository, from this package's folder.
const repoRoot = "../.."

// testVersion is stamped into the image under test.
const testVersion = "0.0.0-container-test"

// imageFile is one entry of the image's file system.
type imageFile struct {
	typ      byte // tar.TypeReg, tar.TypeDir, …
	mode     int64
	uid, gid int
	data     []byte // regular files
}

// image is what an image holds: its configuration and its files.
type image struct {
	config struct {
		Architecture string
		OS           string
		Config       struct {
			User       string
			Entrypoint []string
			Cmd        []string
			WorkingDir string
			Labels     map[string]string
		}
	}
	files map[string]imageFile // by path without a leading slash or a trailing one
}

// TestImage builds the image with deploy/container/build.sh and checks
// what is in it, that a second build from scratch gives the same image,
// that its binary reports the version of its label, and runs serve, verify
// and migrate from it.
func TestImage(t *testing.T) {
	p := newPodman(t)
	// What build.sh reads: the recipe and the binary's sources.
	program.Reads(t, repoRoot+"/deploy/container", repoRoot+"/go.mod", repoRoot+"/go.sum", repoRoot+"/cmd",
		repoRoot+"/broker", repoRoot+"/federation", repoRoot+"/keys", repoRoot+"/store", repoRoot+"/web", repoRoot+"/test/fakeidp",
		repoRoot+"/test/demoapp", repoRoot+"/test/internal/fakesrv")
	const tag = "localhost/keyward:test"
	id := p.build(t, tag, testVersion)
	img := saveImage(t, p, tag)

	t.Run("reproducible", func(t *testing.T) {
		// Other storage: nothing is cached, everything is built again.
		again := newPodman(t).build(t, "localhost/keyward:again", testVersion)
		if again != id {
			t.Errorf("a second build gave image %s, the first %s: the build is not reproducible", again, id)
		}
	})

	t.Run("files", func(t *testing.T) {
		var regular, others []string
		for name, f := range img.files {
			if f.uid != 0 && name != "var/lib/keyward" {
				t.Errorf("%s belongs to %d, want root: only the state folder is the image user's", name, f.uid)
			}
			switch f.typ {
			case tar.TypeReg:
				regular = append(regular, name)
			case tar.TypeDir:
			default:
				others = append(others, name)
			}
		}
		slices.Sort(regular)
		// No shell, no libc, no passwd: the binary and the CA certificates.
		if diff := cmp.Diff([]string{"etc/ssl/certs/ca-certificates.crt", "usr/local/bin/keyward"}, regular); diff != "" {
			t.Errorf("regular files (-want +got):\n%s", diff)
		}
		if len(others) > 0 {
			t.Errorf("links or special files %q, want none", others)
		}
		bin := img.files["usr/local/bin/keyward"]
		if bin.mode&0o111 == 0 || bin.mode&0o022 != 0 || bin.uid != 0 {
			t.Errorf("keyward: mode %#o owner %d, want executable, written by root only", bin.mode, bin.uid)
		}
		host, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(img.files["etc/ssl/certs/ca-certificates.crt"].data, host) {
			t.Error("etc/ssl/certs/ca-certificates.crt differs from the host's bundle")
		}
		state, ok := img.files["var/lib/keyward"]
		if !ok || state.typ != tar.TypeDir || state.uid != imageUser || state.gid != imageUser || state.mode&0o777 != 0o700 {
			t.Errorf("var/lib/keyward: %+v, want a folder of %d:%d, mode 0700", state, imageUser, imageUser)
		}
		assertStatic(t, bin.data)
	})

	t.Run("config", func(t *testing.T) {
		c := img.config.Config
		if c.User != "65532:65532" {
			t.Errorf("User = %q, want 65532:65532 (numeric, not root)", c.User)
		}
		if diff := cmp.Diff([]string{"/usr/local/bin/keyward"}, c.Entrypoint); diff != "" {
			t.Errorf("Entrypoint (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"serve", "-c", "/etc/keyward/keyward.yaml"}, c.Cmd); diff != "" {
			t.Errorf("Cmd (-want +got):\n%s", diff)
		}
		if got := c.Labels["org.opencontainers.image.version"]; got != testVersion {
			t.Errorf("label org.opencontainers.image.version = %q, want %q", got, testVersion)
		}
		if img.config.OS != "linux" || img.config.Architecture != runtime.GOARCH {
			t.Errorf("platform %s/%s, want linux/%s", img.config.OS, img.config.Architecture, runtime.GOARCH)
		}
	})

	t.Run("version", func(t *testing.T) {
		out := p.output(t, "run", "--rm", "--network", "none", tag, "version")
		label := img.config.Config.Labels["org.opencontainers.image.version"]
		if got, want := strings.TrimSpace(out), "keyward "+label; got != want {
			t.Errorf("keyward version in the image = %q, want %q (the label)", got, want)
		}
	})

	t.Run("serve and verify", func(t *testing.T) { testServeAndVerify(t, p, tag) })
	t.Run("migrate", func(t *testing.T) { testMigrate(t, p, tag) })
}

// assertStatic fails t unless bin is a statically linked ELF executable
// (no interpreter, no shared libraries): CGO_ENABLED=0.
func assertStatic(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("keyward is not an ELF file: %v", err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("keyward has an ELF interpreter: it is dynamically linked, want CGO_ENABLED=0")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("keyward needs shared libraries %q (%v), want none", libs, err)
	}
}

// saveImage writes the image tag in the OCI layout and reads it back.
func saveImage(t *testing.T, p *podman, tag string) *image {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	p.output(t, "save", "--format", "oci-dir", "--output", dir, tag)
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	blob := func(d descriptor) []byte {
		alg, hex, ok := strings.Cut(d.Digest, ":")
		if !ok {
			t.Fatalf("digest %q", d.Digest)
		}
		b, err := os.ReadFile(filepath.Join(dir, "blobs", alg, hex))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests, want 1", err, len(index.Manifests))
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(blob(index.Manifests[0]), &manifest); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	img := &image{files: map[string]imageFile{}}
	if err := json.Unmarshal(blob(manifest.Config), &img.config); err != nil {
		t.Fatalf("image config: %v", err)
	}
	for _, l := range manifest.Layers {
		var r io.Reader = bytes.NewReader(blob(l))
		if strings.HasSuffix(l.MediaType, "+gzip") {
			if r, err = gzip.NewReader(r); err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
		}
		readLayer(t, tar.NewReader(r), img.files)
	}
	return img
}

// readLayer adds the entries of layer to files (a later layer's entry
// replaces an earlier one's).
func readLayer(t *testing.T, layer *tar.Reader, files map[string]imageFile) {
	t.Helper()
	for {
		h, err := layer.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		name := strings.Trim(filepath.Clean("/"+h.Name), "/")
		if strings.HasPrefix(filepath.Base(name), ".wh.") {
			t.Errorf("layer has a whiteout %s: the image has more than one layer's history", name)
		}
		f := imageFile{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid}
		if h.Typeflag == tar.TypeReg {
			if f.data, err = io.ReadAll(layer); err != nil {
				t.Fatalf("read %s: %v", name, err)
			}
		}
		files[name] = f
	}
}
