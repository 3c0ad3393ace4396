package deploy

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

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/kata-containers/kata-monitor/configs"
)

const (
	repoRoot = ".."
	k8sDir   = "kubernetes"
)

// goTool returns the go command, or skips: the manifest and config checks
// build small helper programs.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go command not on PATH: %v", err)
	}
	return p
}

// buildEnv is the environment of helper builds: no workspace, no toolchain
// switch, nothing from the caller's GOFLAGS that could turn -mod back to
// readonly. The module proxy stays reachable: on a fresh machine nothing
// else has downloaded k8s.io/api yet (only this test imports it), and a
// silent skip there would hide a broken manifest.
func buildEnv() []string {
	return append(os.Environ(), "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
}

// goBuild builds pkg (a path relative to the repository root) against a
// scratch copy of go.mod/go.sum with -mod=mod, so that requirements the root
// go.mod lacks are resolved from the module graph without touching it.
func goBuild(t *testing.T, pkg string) (bin string, out []byte, err error) {
	t.Helper()
	goBin := goTool(t)
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	bin = filepath.Join(dir, "helper")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-mod=mod", "-modfile="+filepath.Join(dir, "go.mod"), "-o", bin, pkg)
	cmd.Dir = repoRoot
	cmd.Env = buildEnv()
	out, err = cmd.CombinedOutput()
	return bin, out, err
}

// missingModules tells a build that failed for want of downloaded modules
// (an offline machine with a cold cache) from a broken program.
func missingModules(out []byte) bool {
	for _, s := range []string{"module lookup disabled", "cannot find module", "missing go.sum entry"} {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

func readYAMLDocs(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err)
		if m != nil {
			docs = append(docs, m)
		}
	}
}

func readManifest(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(k8sDir, name))
	require.NoError(t, err)
	docs := readYAMLDocs(t, data)
	require.Len(t, docs, 1, name)
	return docs[0]
}

// path walks nested maps and lists: path(m, "spec", "template", 0, "name").
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// TestManifestsDecodeStrictly: the shipped manifests decode strictly into
// the Kubernetes types, and each mistake an edit could make is caught. Long
// for its table, one row per manifest mistake.
func TestManifestsDecodeStrictly(t *testing.T) {
	bin, out, err := goBuild(t, "./deploy/testdata/k8scheck")
	if err != nil && missingModules(out) {
		t.Skipf("k8s.io/api and its dependencies are not in the module cache: %s", out)
	}
	require.NoError(t, err, "build k8scheck: %s", out)

	tests := []struct {
		name        string
		file        string
		old, new    string
		wantProblem string // "" means clean
	}{
		{name: "as shipped"},
		{name: "misspelt field in the DaemonSet", file: "daemonset.yaml",
			old: "      hostNetwork: false\n", new: "      hostNetwork: false\n      hostNetwrok: false\n",
			wantProblem: `unknown field "spec.template.spec.hostNetwrok"`},
		{name: "duplicate key", file: "daemonset.yaml",
			old: "      hostNetwork: false\n", new: "      hostNetwork: false\n      hostNetwork: true\n",
			wantProblem: `"hostNetwork" already set`},
		{name: "misspelt field in the Service", file: "service.yaml",
			old: "clusterIP: None", new: "clusterIp: None", wantProblem: `unknown field "spec.clusterIp"`},
		{name: "writable sandbox root", file: "daemonset.yaml",
			old: "mountPath: /run/vc\n              readOnly: true", new: "mountPath: /run/vc\n              readOnly: false",
			wantProblem: "readOnly is false, want true"},
		{name: "liveness on the readiness path", file: "daemonset.yaml",
			old: "path: /healthz", new: "path: /readyz", wantProblem: "livenessProbe path"},
		{name: "node name hard-coded", file: "daemonset.yaml",
			old:         "              valueFrom:\n                fieldRef:\n                  fieldPath: spec.nodeName\n",
			new:         "              value: worker-1\n",
			wantProblem: "NODE_NAME must come from fieldRef spec.nodeName"},
		{name: "no config flag", file: "daemonset.yaml",
			old: "- --config=/etc/kata-monitor/config.yaml", new: "- --log-level=debug", wantProblem: "args lack --config="},
		{name: "no memory limit", file: "daemonset.yaml",
			old: "              memory: 512Mi\n", new: "", wantProblem: "memory request and limit must be set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
			require.NoError(t, err)
			for _, f := range files {
				data, err := os.ReadFile(f)
				require.NoError(t, err)
				if filepath.Base(f) == tc.file {
					require.Contains(t, string(data), tc.old, "mutation no longer applies")
					data = []byte(strings.Replace(string(data), tc.old, tc.new, 1))
				}
				require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644))
			}
			cmd := exec.CommandContext(t.Context(), bin, dir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			if tc.wantProblem == "" {
				require.NoError(t, err, "problems:\n%s%s", stdout.String(), stderr.String())
				return
			}
			var exitErr *exec.ExitError
			require.ErrorAs(t, err, &exitErr, "stderr: %s", stderr.String())
			require.Equal(t, 1, exitErr.ExitCode(), "stderr: %s", stderr.String())
			require.Contains(t, stdout.String(), tc.wantProblem)
		})
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	k := readManifest(t, "kustomization.yaml")
	var listed []string
	for _, r := range k["resources"].([]any) {
		listed = append(listed, r.(string))
	}
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	var onDisk []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			onDisk = append(onDisk, b)
		}
	}
	slices.Sort(listed)
	require.Equal(t, onDisk, listed)
}

func TestPodMonitor(t *testing.T) {
	pm := readManifest(t, "podmonitor.yaml")
	require.Equal(t, "monitoring.coreos.com/v1", pm["apiVersion"])
	require.Equal(t, "PodMonitor", pm["kind"])
	require.Equal(t, "kata-monitor", path(pm, "metadata", "namespace"))
	eps, ok := path(pm, "spec", "podMetricsEndpoints").([]any)
	require.True(t, ok && len(eps) > 0, "spec.podMetricsEndpoints must be a non-empty list")
	for i := range eps {
		require.Equal(t, "metrics", path(eps, i, "port"), "endpoint %d", i)
		// The shim series are pushed: the scrape reads kata-monitor's own
		// families only, which /metrics/self serves without a shim round.
		require.Equal(t, "/metrics/self", path(eps, i, "path"), "endpoint %d", i)
		require.Nil(t, path(eps, i, "metricRelabelings"), "endpoint %d: /metrics/self needs no filter", i)
	}

	ds := readManifest(t, "daemonset.yaml")
	podLabels, _ := path(ds, "spec", "template", "metadata", "labels").(map[string]any)
	sel, ok := path(pm, "spec", "selector", "matchLabels").(map[string]any)
	require.True(t, ok && len(sel) > 0, "spec.selector.matchLabels")
	for k, v := range sel {
		require.Equal(t, v, podLabels[k], "selector %s does not match the DaemonSet's pods", k)
	}
	var portNames []any
	for _, p := range path(ds, "spec", "template", "spec", "containers", 0, "ports").([]any) {
		portNames = append(portNames, path(p, "name"))
	}
	require.Contains(t, portNames, "metrics")
}

// TestShippedConfigsReuseRounds: with remote_write, pulls reuse the
// scheduled round (snapshot_max_age = scrape_interval), as README advises.
func TestShippedConfigsReuseRounds(t *testing.T) {
	cm := readManifest(t, "configmap.yaml")
	embedded := path(cm, "data", "config.yaml").(string)
	host, err := os.ReadFile(filepath.Join("systemd", "config.yaml"))
	require.NoError(t, err)
	for name, text := range map[string]string{"configmap": embedded, "systemd": string(host)} {
		var c struct {
			Global struct {
				ScrapeInterval string `yaml:"scrape_interval"`
				SnapshotMaxAge string `yaml:"snapshot_max_age"`
			} `yaml:"global"`
			RemoteWrite []any `yaml:"remote_write"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(text), &c), name)
		require.NotEmpty(t, c.RemoteWrite, name)
		require.NotEmpty(t, c.Global.ScrapeInterval, name)
		require.Equal(t, c.Global.ScrapeInterval, c.Global.SnapshotMaxAge, "%s: snapshot_max_age must equal scrape_interval", name)
	}
}

// TestSecretRecipe runs deploy/kubernetes/README.md's secret recipe as
// written, from the repository root (a copy of deploy/kubernetes in a temp
// dir), with `kubectl kustomize` standing in for `kubectl apply -k` (no
// cluster here), and checks that the render carries the password from
// ./password, not the placeholder.
func TestSecretRecipe(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("kubectl not on PATH: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join(k8sDir, "README.md"))
	require.NoError(t, err)
	_, block, ok := strings.Cut(string(readme), "```sh\n")
	require.True(t, ok, "README has no sh block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	require.Contains(t, block, "kubectl apply -k deploy/kubernetes")

	root := t.TempDir()
	dst := filepath.Join(root, "deploy", "kubernetes")
	require.NoError(t, os.MkdirAll(dst, 0o755))
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "password"), []byte("s3cret-from-file"), 0o600))
	// kubectl on PATH: apply -k renders instead of applying.
	bin := filepath.Join(root, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	shim := "#!/bin/sh\nif [ \"$1\" = apply ] && [ \"$2\" = -k ]; then exec " + kubectl + " kustomize \"$3\" > rendered.yaml; fi\nexec " + kubectl + " \"$@\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "kubectl"), []byte(shim), 0o755))

	cmd := exec.CommandContext(t.Context(), "bash", "-e", "-c", block)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "recipe failed:\n%s", out)

	rendered, err := os.ReadFile(filepath.Join(root, "rendered.yaml"))
	require.NoError(t, err)
	var secret map[string]any
	for _, d := range readYAMLDocs(t, rendered) {
		if d["kind"] == "Secret" {
			secret = d
		}
	}
	require.NotNil(t, secret, "no Secret rendered")
	require.Equal(t, "kata-monitor-remote-write", path(secret, "metadata", "name"))
	require.Equal(t, "kata-monitor", path(secret, "metadata", "namespace"))
	require.Equal(t, "czNjcmV0LWZyb20tZmlsZQ==", path(secret, "data", "password")) // base64("s3cret-from-file")
	require.NotContains(t, string(rendered), "change-me")
}

func TestKustomizeRenders(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("kubectl not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", k8sDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "kubectl kustomize: %s", stderr.String())

	var kinds []string
	for _, d := range readYAMLDocs(t, stdout.Bytes()) {
		kinds = append(kinds, d["kind"].(string))
	}
	slices.Sort(kinds)
	require.Equal(t, []string{"ConfigMap", "DaemonSet", "Namespace", "PodMonitor", "Secret", "Service", "ServiceAccount"}, kinds)
}

// TestShippedConfigsLoad loads the ConfigMap's config.yaml and the host's
// config.yaml with the daemon's own loader. Files they name under
// /etc/kata-monitor are redirected to a temp dir where they exist, as the
// loader checks secrets are readable.
func TestShippedConfigsLoad(t *testing.T) {
	cm := readManifest(t, "configmap.yaml")
	embedded, ok := path(cm, "data", "config.yaml").(string)
	require.True(t, ok, "configmap.yaml has no data.config.yaml")
	host, err := os.ReadFile(filepath.Join("systemd", "config.yaml"))
	require.NoError(t, err)

	etc := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(etc, "secrets"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(etc, "secrets", "password"), []byte("x\n"), 0o600))

	tests := []struct {
		name     string
		text     string
		nodeName *string
		wantNode string
		// wantPassword is the password_file as shipped: the path where the
		// DaemonSet projects the Secret.
		wantPassword string
		wantErr      string
	}{
		{name: "configmap", text: embedded, nodeName: ptr("worker-7"), wantNode: "worker-7",
			wantPassword: "/etc/kata-monitor/secrets/password"},
		{name: "configmap without NODE_NAME", text: embedded, wantErr: "NODE_NAME"},
		{name: "systemd host config", text: string(host), nodeName: ptr("host-1"), wantNode: "host-1"},
		{name: "systemd host config without NODE_NAME", text: string(host), wantErr: "NODE_NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", "")
			if tc.nodeName != nil {
				t.Setenv("NODE_NAME", *tc.nodeName)
			} else {
				require.NoError(t, os.Unsetenv("NODE_NAME"))
			}
			text := strings.ReplaceAll(tc.text, "/etc/kata-monitor/", etc+"/")
			cfg, err := configs.Load(strings.NewReader(text))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantNode, cfg.Global.ExternalLabels["node"])
			require.Equal(t, "/var/lib/kata-monitor/wal", cfg.WAL.Dir, "the WAL must be under the writable /var/lib/kata-monitor")
			require.NotEmpty(t, cfg.RemoteWrite)
			if tc.wantPassword != "" {
				require.NotNil(t, cfg.RemoteWrite[0].HTTPClientConfig.BasicAuth)
				require.Equal(t, strings.ReplaceAll(tc.wantPassword, "/etc/kata-monitor/", etc+"/"),
					cfg.RemoteWrite[0].HTTPClientConfig.BasicAuth.PasswordFile)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
