// Package image checks `make image`: the image builds without a Docker
// engine, holds only the static binary and the CA bundle, runs as a
// non-root user, and serves /metrics/self when run.
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kata-containers/kata-monitor/test/daemon"
)

// imageConfig is the part of `buildah inspect --type image` checked here.
type imageConfig struct {
	OCIv1 struct {
		Config struct {
			User         string              `json:"User"`
			Entrypoint   []string            `json:"Entrypoint"`
			Cmd          []string            `json:"Cmd"`
			ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		} `json:"config"`
	} `json:"OCIv1"`
}

func buildah(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("buildah", args...).CombinedOutput()
	require.NoError(t, err, "buildah %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// TestImage runs `make image`, inspects the image, unpacks its root
// filesystem and runs it: with podman when podman can run containers here,
// else as an OCI bundle with runc (the image's rootfs, entrypoint and user),
// because podman needs to set resource limits some sandboxes do not allow
// (no CAP_SYS_RESOURCE).
func TestImage(t *testing.T) {
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("buildah is not installed: scripts/install-deps.sh --browser (as root) or apt-get install -y buildah")
	}
	image := fmt.Sprintf("localhost/kata-monitor-test:%d", os.Getpid())
	make := exec.Command("make", "-C", "../..", "image", "IMAGE="+image)
	out, err := make.CombinedOutput()
	require.NoError(t, err, "make image: %s", out)
	require.Contains(t, string(out), "image: built "+image)
	t.Cleanup(func() { _ = exec.Command("buildah", "rmi", "-f", image).Run() })

	var cfg imageConfig
	require.NoError(t, json.Unmarshal([]byte(buildah(t, "inspect", "--type", "image", image)), &cfg))
	c := cfg.OCIv1.Config
	require.Equal(t, "65532:65532", c.User, "non-root by default")
	require.Equal(t, []string{"/kata-monitor"}, c.Entrypoint)
	require.Equal(t, []string{"--listen-address=:8090"}, c.Cmd)
	require.Contains(t, c.ExposedPorts, "8090/tcp")

	// The root filesystem: the binary and the CA bundle, nothing else (no
	// shell, no package manager).
	ctr := buildah(t, "from", image)
	t.Cleanup(func() { _ = exec.Command("buildah", "rm", ctr).Run() })
	mnt := buildah(t, "mount", ctr)
	var files []string
	require.NoError(t, filepath.Walk(mnt, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			rel, _ := filepath.Rel(mnt, p)
			files = append(files, "/"+rel)
		}
		return nil
	}))
	sort.Strings(files)
	require.Equal(t, []string{"/etc/ssl/certs/ca-certificates.crt", "/kata-monitor"}, files)

	addr, err := daemon.FreeAddr()
	require.NoError(t, err)
	args := []string{"--listen-address=" + addr}
	stop, how := runPodman(t, image, args)
	if stop == nil {
		t.Logf("podman cannot run containers here (%s); running the image's rootfs as an OCI bundle with runc", how)
		stop = runBundle(t, mnt, c.Entrypoint, c.User, args)
	}
	t.Cleanup(stop)

	var body string
	require.Eventually(t, func() bool {
		var code int
		code, body = daemon.Get("http://"+addr+"/metrics/self", nil)
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "the container never served /metrics/self")
	require.Contains(t, body, "kata_monitor_go_goroutines")
	require.NotContains(t, body, "sandbox_id=", "own metrics only")
}

// runPodman starts the image with podman on the host network; nil and the
// reason when podman is missing or cannot run containers here.
func runPodman(t *testing.T, image string, args []string) (stop func(), why string) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, "podman is not installed"
	}
	name := fmt.Sprintf("kata-monitor-test-%d", os.Getpid())
	out, err := exec.Command("podman", append([]string{"run", "-d", "--rm", "--name", name, "--network", "host", image}, args...)...).CombinedOutput()
	if err != nil {
		return nil, strings.TrimSpace(string(out))
	}
	return func() { _ = exec.Command("podman", "rm", "-f", name).Run() }, ""
}

// runBundle runs rootfs as an OCI bundle with runc, with the image's
// entrypoint and user, its own namespaces except the network (so the test
// reaches the listener), a read-only root.
func runBundle(t *testing.T, rootfs string, entrypoint []string, user string, args []string) func() {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("neither podman nor runc can run the image here: scripts/install-deps.sh --browser installs runc")
	}
	bundle := t.TempDir()
	require.NoError(t, exec.Command("cp", "-a", rootfs, filepath.Join(bundle, "rootfs")).Run())
	spec := exec.Command("runc", "spec")
	spec.Dir = bundle
	out, err := spec.CombinedOutput()
	require.NoError(t, err, "runc spec: %s", out)
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	uid, gid, ok := strings.Cut(user, ":")
	require.True(t, ok, user)
	u, _ := strconv.Atoi(uid)
	g, _ := strconv.Atoi(gid)
	proc := cfg["process"].(map[string]any)
	proc["args"] = append(append([]string(nil), entrypoint...), args...)
	proc["terminal"] = false
	proc["user"] = map[string]any{"uid": u, "gid": g}
	linux := cfg["linux"].(map[string]any)
	var ns []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			ns = append(ns, n)
		}
	}
	linux["namespaces"] = ns
	cfg["root"] = map[string]any{"path": "rootfs", "readonly": true}
	raw, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644))

	id := fmt.Sprintf("kata-monitor-test-%d", os.Getpid())
	logf, err := os.Create(filepath.Join(bundle, "log"))
	require.NoError(t, err)
	run := exec.Command("runc", "run", "-d", id)
	run.Dir = bundle
	run.Stdout, run.Stderr = logf, logf
	err = run.Run()
	logf.Close()
	if err != nil {
		l, _ := os.ReadFile(filepath.Join(bundle, "log"))
		require.NoError(t, err, "runc run: %s", l)
	}
	return func() {
		_ = exec.Command("runc", "kill", id, "KILL").Run()
		if err := exec.Command("runc", "delete", "-f", id).Run(); err != nil && !errors.Is(err, exec.ErrNotFound) {
			t.Logf("runc delete %s: %v", id, err)
		}
	}
}
