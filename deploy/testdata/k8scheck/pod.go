package main

import (
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// hostMount is a host path kata-monitor needs, where it must be mounted in
// the container, and whether it may be written.
type hostMount struct {
	path     string
	pathType corev1.HostPathType
	readOnly bool
}

var wantHostMounts = []hostMount{
	{"/run/vc", corev1.HostPathDirectoryOrCreate, true},
	{"/run/kata", corev1.HostPathDirectoryOrCreate, true},
	{"/run/containerd/containerd.sock", corev1.HostPathSocket, true},
	{"/var/lib/kata-monitor", corev1.HostPathDirectoryOrCreate, false},
}

func checkPod(p *problemList, ds *appsv1.DaemonSet, objs objects) {
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0] // checkObjects made sure there is exactly one
	if spec.HostNetwork {
		p.addf("DaemonSet: hostNetwork must be false")
	}
	if spec.NodeSelector["katacontainers.io/kata-runtime"] != "true" {
		p.addf("DaemonSet: nodeSelector katacontainers.io/kata-runtime=\"true\" missing")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool {
		return t.Key == "" && t.Operator == corev1.TolerationOpExists && t.Effect == ""
	}) {
		p.addf("DaemonSet: no toleration of every taint (operator: Exists without key)")
	}
	if _, ok := objs.accounts[spec.ServiceAccountName]; !ok {
		p.addf("DaemonSet: serviceAccountName %q is not defined", spec.ServiceAccountName)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != 30 {
		p.addf("DaemonSet: terminationGracePeriodSeconds must be 30")
	}
	checkProbes(p, c)
	checkArgs(p, c)
	checkEnv(p, c)
	checkResources(p, c)
	checkSecurity(p, spec, c)
	checkHostMounts(p, spec, c)
	checkConfigVolume(p, spec, c, objs)
}

func checkProbes(p *problemList, c corev1.Container) {
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			p.addf("container: %s must be an httpGet", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path {
			p.addf("container: %s path %q, want %q", pr.name, pr.probe.HTTPGet.Path, pr.path)
		}
		port := pr.probe.HTTPGet.Port.String()
		if port != "8090" && !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
			return cp.Name == port && cp.ContainerPort == 8090
		}) {
			p.addf("container: %s port %s is not 8090", pr.name, port)
		}
	}
}

func checkArgs(p *problemList, c corev1.Container) {
	for _, want := range []string{
		"--listen-address=0.0.0.0:8090",
		"--config=/etc/kata-monitor/config.yaml",
		"--runtime-endpoint=/run/containerd/containerd.sock",
	} {
		if !slices.Contains(c.Args, want) {
			p.addf("container: args lack %s", want)
		}
	}
}

func checkEnv(p *problemList, c corev1.Container) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
	if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil ||
		c.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		p.addf("container: NODE_NAME must come from fieldRef spec.nodeName")
	}
}

func checkResources(p *problemList, c corev1.Container) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[name]
		lim, okLim := c.Resources.Limits[name]
		if !okReq || !okLim || req.IsZero() || lim.IsZero() {
			p.addf("container: %s request and limit must be set", name)
			continue
		}
		if req.Cmp(lim) > 0 {
			p.addf("container: %s request %s above limit %s", name, req.String(), lim.String())
		}
	}
}

func checkSecurity(p *problemList, spec corev1.PodSpec, c corev1.Container) {
	sc := c.SecurityContext
	if sc == nil {
		p.addf("container: securityContext missing")
		return
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		p.addf("container: readOnlyRootFilesystem must be true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p.addf("container: allowPrivilegeEscalation must be false")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		p.addf("container: capabilities must drop ALL and add none")
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && spec.SecurityContext != nil {
		seccomp = spec.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		p.addf("pod: seccompProfile must be RuntimeDefault")
	}
}

func checkHostMounts(p *problemList, spec corev1.PodSpec, c corev1.Container) {
	for _, want := range wantHostMounts {
		vi := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool {
			return v.HostPath != nil && v.HostPath.Path == want.path
		})
		if vi < 0 {
			p.addf("pod: no hostPath volume for %s", want.path)
			continue
		}
		v := spec.Volumes[vi]
		if v.HostPath.Type == nil || *v.HostPath.Type != want.pathType {
			p.addf("volume %s: hostPath type must be %s", v.Name, want.pathType)
		}
		mi := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == v.Name })
		if mi < 0 {
			p.addf("volume %s: not mounted", v.Name)
			continue
		}
		m := c.VolumeMounts[mi]
		if m.MountPath != want.path {
			p.addf("volume %s: mounted at %s, want the host path %s (the daemon's defaults)", v.Name, m.MountPath, want.path)
		}
		if m.ReadOnly != want.readOnly {
			p.addf("volume %s: readOnly is %t, want %t", v.Name, m.ReadOnly, want.readOnly)
		}
	}
	// Any other hostPath must be read-only too: nothing else on the host is
	// kata-monitor's to write.
	for _, v := range spec.Volumes {
		if v.HostPath == nil || slices.ContainsFunc(wantHostMounts, func(h hostMount) bool { return h.path == v.HostPath.Path }) {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name && !m.ReadOnly {
				p.addf("volume %s: unexpected writable hostPath %s", v.Name, v.HostPath.Path)
			}
		}
	}
}

// checkConfigVolume checks that --config's file and the secrets it names
// are projected from objects that exist, with the keys they need.
func checkConfigVolume(p *problemList, spec corev1.PodSpec, c corev1.Container, objs objects) {
	mi := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/kata-monitor" })
	if mi < 0 {
		p.addf("container: nothing mounted at /etc/kata-monitor")
		return
	}
	vi := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[mi].Name })
	if vi < 0 || spec.Volumes[vi].Projected == nil {
		p.addf("container: /etc/kata-monitor must be a projected volume (config and secrets)")
		return
	}
	paths := map[string]bool{}
	for _, src := range spec.Volumes[vi].Projected.Sources {
		switch {
		case src.ConfigMap != nil:
			cm, ok := objs.configMaps[src.ConfigMap.Name]
			checkProjected(p, paths, "ConfigMap", src.ConfigMap.Name, ok, src.ConfigMap.Items, func(key string) bool {
				_, in := cm.Data[key]
				return in
			})
		case src.Secret != nil:
			s, ok := objs.secrets[src.Secret.Name]
			checkProjected(p, paths, "Secret", src.Secret.Name, ok, src.Secret.Items, func(key string) bool {
				_, inData := s.Data[key]
				_, inString := s.StringData[key]
				return inData || inString
			})
			for _, it := range src.Secret.Items {
				if ok && !strings.HasPrefix(it.Path, "secrets/") {
					p.addf("config volume: secret key %s projected outside secrets/", it.Key)
				}
			}
		}
	}
	if !paths["config.yaml"] {
		p.addf("config volume: config.yaml is not projected")
	}
}

// checkProjected checks one projected source of the config volume: the
// object kind name must exist (defined) and have every item's key (has);
// the items' paths are added to paths.
func checkProjected(p *problemList, paths map[string]bool, kind, name string, defined bool, items []corev1.KeyToPath, has func(key string) bool) {
	if !defined {
		p.addf("config volume: %s %q is not defined", kind, name)
		return
	}
	for _, it := range items {
		if !has(it.Key) {
			p.addf("config volume: %s %s has no key %s", kind, name, it.Key)
		}
		paths[it.Path] = true
	}
}
