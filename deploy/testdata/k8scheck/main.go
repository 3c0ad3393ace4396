// Command k8scheck decodes every manifest of a directory strictly into its
// Kubernetes API type (an unknown or misspelt field, including a wrong
// case, or a duplicate key is an error, as the API server's strict field
// validation reports it) and checks the contract
// the DaemonSet must keep with kata-monitor: probes, read-only host mounts,
// the node name from the downward API, resources, security context.
//
// It lives under testdata, built by deploy_test.go, so that the Kubernetes
// API types are compiled only for this check, not into every test binary.
//
// Usage: k8scheck DIR. Exit 0: clean; 1: problems, one per line on stdout;
// 2: the directory could not be read.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const namespace = "kata-monitor"

type objects struct {
	daemonSets []*appsv1.DaemonSet
	services   []*corev1.Service
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	accounts   map[string]*corev1.ServiceAccount
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: k8scheck DIR")
		os.Exit(2)
	}
	problems, err := check(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}

func check(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	sort.Strings(files)
	objs := objects{
		configMaps: map[string]*corev1.ConfigMap{},
		secrets:    map[string]*corev1.Secret{},
		accounts:   map[string]*corev1.ServiceAccount{},
	}
	var problems []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		for i, doc := range splitDocuments(data) {
			where := fmt.Sprintf("%s[%d]", filepath.Base(f), i)
			problems = append(problems, decode(where, doc, &objs)...)
		}
	}
	return append(problems, checkObjects(objs)...), nil
}

// splitDocuments cuts a YAML stream at "---" lines and drops documents that
// hold only comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		var m map[string]any
		if yaml.Unmarshal(d, &m) == nil && len(m) == 0 {
			continue
		}
		docs = append(docs, d)
	}
	return docs
}

func decode(where string, doc []byte, objs *objects) []string {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var obj interface {
		GetNamespace() string
		GetName() string
	}
	// keep records the object once it decoded cleanly, so the contract
	// checks never see a half-decoded one.
	var keep func()
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		obj = &corev1.Namespace{}
	case "v1 ServiceAccount":
		sa := &corev1.ServiceAccount{}
		obj = sa
		keep = func() { objs.accounts[sa.Name] = sa }
	case "v1 ConfigMap":
		cm := &corev1.ConfigMap{}
		obj = cm
		keep = func() { objs.configMaps[cm.Name] = cm }
	case "v1 Secret":
		s := &corev1.Secret{}
		obj = s
		keep = func() { objs.secrets[s.Name] = s }
	case "v1 Service":
		s := &corev1.Service{}
		obj = s
		keep = func() { objs.services = append(objs.services, s) }
	case "apps/v1 DaemonSet":
		ds := &appsv1.DaemonSet{}
		obj = ds
		keep = func() { objs.daemonSets = append(objs.daemonSets, ds) }
	case "monitoring.coreos.com/v1 PodMonitor":
		return nil // a CRD: deploy_test.go checks it as a map
	default:
		return []string{fmt.Sprintf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)}
	}
	if problems := decodeStrict(where+": "+tm.Kind, doc, obj); problems != nil {
		return problems
	}
	if tm.Kind != "Namespace" && obj.GetNamespace() != namespace {
		return []string{fmt.Sprintf("%s: %s %s: namespace %q, want %q", where, tm.Kind, obj.GetName(), obj.GetNamespace(), namespace)}
	}
	if keep != nil {
		keep()
	}
	return nil
}

// decodeStrict decodes doc into obj as the API server's strict field
// validation does: YAML with duplicate keys is refused, then the JSON is
// matched case-sensitively (encoding/json, and so yaml.UnmarshalStrict,
// would take "clusterIp" for "clusterIP"). It returns every problem, each
// prefixed with where.
func decodeStrict(where string, doc []byte, obj any) []string {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, obj)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", where, err)}
	}
	var problems []string
	for _, e := range strictErrs {
		problems = append(problems, fmt.Sprintf("%s: %v", where, e))
	}
	return problems
}

func checkObjects(objs objects) []string {
	if len(objs.daemonSets) != 1 {
		return []string{fmt.Sprintf("want exactly one DaemonSet, got %d", len(objs.daemonSets))}
	}
	ds := objs.daemonSets[0]
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		return []string{fmt.Sprintf("DaemonSet: want one container, got %d", len(ds.Spec.Template.Spec.Containers))}
	}
	p := &problemList{}
	checkPod(p, ds, objs)
	for _, svc := range objs.services {
		for k, v := range svc.Spec.Selector {
			if ds.Spec.Template.Labels[k] != v {
				p.addf("Service %s: selector %s=%s does not match the DaemonSet's pods", svc.Name, k, v)
			}
		}
		for _, port := range svc.Spec.Ports {
			if !slices.ContainsFunc(ds.Spec.Template.Spec.Containers[0].Ports, func(cp corev1.ContainerPort) bool {
				return cp.Name == port.TargetPort.String() || fmt.Sprint(cp.ContainerPort) == port.TargetPort.String()
			}) {
				p.addf("Service %s: targetPort %s is not a container port", svc.Name, port.TargetPort.String())
			}
		}
	}
	return p.list
}

type problemList struct{ list []string }

func (p *problemList) addf(format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf(format, args...))
}
