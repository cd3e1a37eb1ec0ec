package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The Kubernetes release whose OpenAPI documents the manifests are checked
// against, fetched through the Go module proxy (kubeconform's default
// schema registry is on GitHub, which this machine cannot reach) and
// pinned by its go.sum hash.
const (
	kubernetesModule = "k8s.io/kubernetes@v1.34.2"
	kubernetesSum    = "h1:WQdDvYJazkmkwSncgNwGvVtaCt4TYXIU3wSMRgvp3MI="
)

// The Prometheus Operator's kinds (PrometheusRule, PodMonitor) are custom
// resources, so no Kubernetes document describes them: their schemas come
// from the operator's own CustomResourceDefinitions (the openAPIV3Schema
// the API server itself would enforce), in its module, fetched and pinned
// the same way.
const (
	operatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
	operatorSum    = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
	operatorGroup  = "monitoring.coreos.com"
)

// TestKubernetesManifestsValidate runs kubeconform (a Go tool of this
// module) in strict mode over deploy/kubernetes: unknown fields, wrong
// types and missing required fields fail.
func TestKubernetesManifestsValidate(t *testing.T) {
	schemas := schemaDir(t, "kubernetes")
	out, err := kubeconform(schemas, "kubernetes")
	require.NoError(t, err, out)
	docs := manifests(t, "kubernetes")
	require.Contains(t, out, fmt.Sprintf("Valid: %d, Invalid: 0, Errors: 0, Skipped: 0", len(docs)), out)

	kinds := map[string]bool{}
	for _, d := range docs {
		kinds[d.Kind] = true
	}
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "PrometheusRule", "PodMonitor"} {
		require.True(t, kinds[k], "deploy/kubernetes has a %s", k)
	}
}

// TestKubeconformCatchesBrokenManifests shows the check has teeth: a
// misspelt field and a wrong type in a copy of the Deployment both fail.
func TestKubeconformCatchesBrokenManifests(t *testing.T) {
	schemas := schemaDir(t, "kubernetes")
	orig, err := os.ReadFile(filepath.Join("kubernetes", "deployment.yaml"))
	require.NoError(t, err)
	for _, c := range []struct{ from, to, want string }{
		{"readinessProbe:", "readynessProbe:", "readynessProbe"},
		{"replicas: 3", "replicas: three", "replicas"},
		{"containerPort: 8080", "containerPort: 8080\n              hostPorts: 1", "hostPorts"},
	} {
		t.Run(c.to, func(t *testing.T) {
			dir := t.TempDir()
			broken := strings.Replace(string(orig), c.from, c.to, 1)
			require.NotEqual(t, string(orig), broken)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "deployment.yaml"), []byte(broken), 0o600))
			out, err := kubeconform(schemas, dir)
			require.Error(t, err, out)
			require.Contains(t, out, c.want)
		})
	}
}

// TestProbesAndPolicyMatchTheService checks what the schema cannot: the
// probes call piivault's own health routes on the port it listens on, the
// budget and the policy select the Deployment's pods, and the policy
// admits only the ingress and reaches only Vault, Redis and DNS.
func TestProbesAndPolicyMatchTheService(t *testing.T) {
	var dep struct {
		Spec struct {
			Replicas int `json:"replicas"`
			Template struct {
				Metadata struct {
					Labels map[string]string `json:"labels"`
				} `json:"metadata"`
				Spec struct {
					Containers []struct {
						Ports []struct {
							Name          string `json:"name"`
							ContainerPort int    `json:"containerPort"`
						} `json:"ports"`
						LivenessProbe  probe `json:"livenessProbe"`
						ReadinessProbe probe `json:"readinessProbe"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	decodeFile(t, "kubernetes/deployment.yaml", &dep)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	decodeFile(t, "kubernetes/configmap.yaml", &cm)
	c := dep.Spec.Template.Spec.Containers[0]
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "http", c.ReadinessProbe.HTTPGet.Port)
	require.Equal(t, "http", c.Ports[0].Name)
	require.True(t, strings.HasSuffix(cm.Data["PIIVAULT_LISTEN"], fmt.Sprintf(":%d", c.Ports[0].ContainerPort)),
		"piivault listens on the container port")
	require.Equal(t, "metrics", c.Ports[1].Name)
	require.True(t, strings.HasSuffix(cm.Data["PIIVAULT_METRICS_LISTEN"], fmt.Sprintf(":%d", c.Ports[1].ContainerPort)),
		"piivault serves /metrics on the metrics container port")
	var pm struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	decodeFile(t, "kubernetes/podmonitor.yaml", &pm)
	require.Equal(t, dep.Spec.Template.Metadata.Labels, pm.Spec.Selector.MatchLabels)
	require.Equal(t, "metrics", pm.Spec.Endpoints[0].Port)
	require.Equal(t, "/metrics", pm.Spec.Endpoints[0].Path)

	var pdb struct {
		Spec struct {
			MinAvailable int `json:"minAvailable"`
			Selector     struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
		} `json:"spec"`
	}
	decodeFile(t, "kubernetes/poddisruptionbudget.yaml", &pdb)
	require.Equal(t, dep.Spec.Template.Metadata.Labels, pdb.Spec.Selector.MatchLabels)
	require.Less(t, pdb.Spec.MinAvailable, dep.Spec.Replicas, "a drain must be able to move a pod")

	type peer struct {
		NamespaceSelector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"namespaceSelector"`
	}
	var np struct {
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"podSelector"`
			PolicyTypes []string `json:"policyTypes"`
			Ingress     []struct {
				From  []peer `json:"from"`
				Ports []struct {
					Port int `json:"port"`
				} `json:"ports"`
			} `json:"ingress"`
			Egress []struct {
				To []peer `json:"to"`
			} `json:"egress"`
		} `json:"spec"`
	}
	decodeFile(t, "kubernetes/networkpolicy.yaml", &np)
	require.Equal(t, dep.Spec.Template.Metadata.Labels, np.Spec.PodSelector.MatchLabels)
	require.ElementsMatch(t, []string{"Ingress", "Egress"}, np.Spec.PolicyTypes, "both directions are closed by default")
	var to []string
	from := map[string][]int{} // namespace → the ports it may reach
	for _, r := range np.Spec.Ingress {
		for _, p := range r.From {
			ns := p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
			for _, port := range r.Ports {
				from[ns] = append(from[ns], port.Port)
			}
		}
	}
	for _, r := range np.Spec.Egress {
		for _, p := range r.To {
			to = append(to, p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
		}
	}
	require.Equal(t, map[string][]int{
		"ingress-nginx": {c.Ports[0].ContainerPort}, // the API only
		"monitoring":    {c.Ports[1].ContainerPort}, // /metrics only
	}, from)
	require.ElementsMatch(t, []string{"vault", "redis", "kube-system"}, to)
}

type probe struct {
	HTTPGet struct {
		Path string `json:"path"`
		Port string `json:"port"`
	} `json:"httpGet"`
}

// TestSystemdUnitVerifiesAndIsHardened runs systemd's own checks on the
// unit: `systemd-analyze verify` (unknown keys, bad values) and
// `systemd-analyze security --offline`, whose exposure score must stay at
// or under 1.5 ("OK"). ExecStart points at a binary that exists here.
func TestSystemdUnitVerifiesAndIsHardened(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze (Debian's systemd package) checks the unit")
	unit := checkableUnit(t, "")
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify has complaints")
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=15", "--no-pager", unit).CombinedOutput()
	require.NoError(t, err, "exposure above 1.5:\n%s", out)

	// The same checks refuse a unit with an unknown key and a weaker one.
	out, _ = exec.Command(analyze, "verify", checkableUnit(t, "ProtectSytem=strict\n")).CombinedOutput()
	require.Contains(t, string(out), "Unknown key")
	weak := checkableUnit(t, "")
	raw, err := os.ReadFile(weak)
	require.NoError(t, err)
	var kept []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "Protect") || strings.HasPrefix(l, "Private") || strings.HasPrefix(l, "SystemCall") {
			continue
		}
		kept = append(kept, l)
	}
	require.NoError(t, os.WriteFile(weak, []byte(strings.Join(kept, "\n")), 0o600))
	require.Error(t, exec.Command(analyze, "security", "--offline=true", "--threshold=15", "--no-pager", weak).Run())
}

// checkableUnit copies the unit to a temporary piivault.service whose
// ExecStart is a binary that exists here, with extra added to [Service].
func checkableUnit(t *testing.T, extra string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("systemd", "piivault.service"))
	require.NoError(t, err)
	bin, err := exec.LookPath("true")
	require.NoError(t, err)
	text := strings.Replace(string(raw), "ExecStart=/usr/local/bin/piivault", "ExecStart="+bin, 1)
	text = strings.Replace(text, "[Service]\n", "[Service]\n"+extra, 1)
	p := filepath.Join(t.TempDir(), "piivault.service")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// kubeconform runs the module's kubeconform tool on path with the schemas
// in dir, strict, and returns its output.
func kubeconform(dir, path string) (string, error) {
	cmd := exec.Command("go", "tool", "kubeconform", "-strict", "-summary",
		"-schema-location", filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json"), path)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// manifests reads every YAML document under dir.
func manifests(t *testing.T, dir string) []typeMeta {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	var out []typeMeta
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, doc := range bytes.Split(raw, []byte("\n---")) {
			var tm typeMeta
			require.NoError(t, yaml.Unmarshal(doc, &tm), f)
			if tm.Kind != "" {
				out = append(out, tm)
			}
		}
	}
	return out
}

func decodeFile(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, v), path)
}

// schemaDir writes strict JSON schemas, named as kubeconform looks them up,
// for every kind the manifests under dir use, from the OpenAPI v3
// documents of the pinned Kubernetes release.
func schemaDir(t *testing.T, dir string) string {
	t.Helper()
	spec := filepath.Join(kubernetesSource(t), "api", "openapi-spec", "v3")
	out := t.TempDir()
	for _, tm := range manifests(t, dir) {
		group, version, found := strings.Cut(tm.APIVersion, "/")
		if group == operatorGroup {
			crdSchema(t, out, tm.Kind, version)
			continue
		}
		doc := "apis__" + group + "__" + version + "_openapi.json"
		suffix := "-" + strings.Split(group, ".")[0] + "-" + version
		if !found {
			version, doc, suffix = group, "api__"+group+"_openapi.json", "-"+group
			group = ""
		}
		raw, err := os.ReadFile(filepath.Join(spec, doc))
		require.NoError(t, err, "no OpenAPI document for %s", tm.APIVersion)
		var openapi struct {
			Components struct {
				Schemas map[string]map[string]any `json:"schemas"`
			} `json:"components"`
		}
		require.NoError(t, json.Unmarshal(raw, &openapi))
		name := ""
		for n, s := range openapi.Components.Schemas {
			gvks, _ := s["x-kubernetes-group-version-kind"].([]any)
			for _, g := range gvks {
				m, _ := g.(map[string]any)
				if m["group"] == group && m["version"] == version && m["kind"] == tm.Kind {
					name = n
				}
			}
		}
		require.NotEmpty(t, name, "no schema for %s %s", tm.APIVersion, tm.Kind)
		for _, s := range openapi.Components.Schemas {
			strict(s)
		}
		body, err := json.Marshal(map[string]any{
			"$ref":       "#/components/schemas/" + name,
			"components": map[string]any{"schemas": openapi.Components.Schemas},
		})
		require.NoError(t, err)
		file := strings.ToLower(tm.Kind) + suffix + ".json"
		require.NoError(t, os.WriteFile(filepath.Join(out, file), body, 0o600))
	}
	return out
}

// strict forbids properties a schema does not name, all the way down, as
// kubeconform's own "-strict" schemas do.
func strict(v any) {
	switch s := v.(type) {
	case map[string]any:
		if _, ok := s["properties"]; ok {
			if _, set := s["additionalProperties"]; !set {
				s["additionalProperties"] = false
			}
		}
		for _, child := range s {
			strict(child)
		}
	case []any:
		for _, child := range s {
			strict(child)
		}
	}
}

// crdSchema writes the strict JSON schema of the Prometheus Operator's
// kind at version into dir, named as kubeconform looks it up, from the
// operator's own CustomResourceDefinition.
func crdSchema(t *testing.T, dir, kind, version string) {
	t.Helper()
	crds, err := filepath.Glob(filepath.Join(moduleSource(t, operatorModule, operatorSum),
		"example", "prometheus-operator-crd", operatorGroup+"_*.yaml"))
	require.NoError(t, err)
	for _, f := range crds {
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		decodeFile(t, f, &crd)
		if crd.Spec.Group != operatorGroup || crd.Spec.Names.Kind != kind {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Name == version {
				strict(v.Schema.OpenAPIV3Schema)
				body, err := json.Marshal(v.Schema.OpenAPIV3Schema)
				require.NoError(t, err)
				file := strings.ToLower(kind) + "-" + strings.Split(operatorGroup, ".")[0] + "-" + version + ".json"
				require.NoError(t, os.WriteFile(filepath.Join(dir, file), body, 0o600))
				return
			}
		}
	}
	t.Fatalf("no CustomResourceDefinition for %s/%s %s in %s", operatorGroup, version, kind, operatorModule)
}

// kubernetesSource downloads the pinned Kubernetes module (its api/
// folder holds the API's OpenAPI documents) and checks its hash.
func kubernetesSource(t *testing.T) string {
	t.Helper()
	return moduleSource(t, kubernetesModule, kubernetesSum)
}

// moduleSource downloads module@version through the Go module proxy and
// returns its directory, after checking its go.sum hash against sum.
func moduleSource(t *testing.T, module, sum string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	raw, err := cmd.Output()
	require.NoError(t, err, "go mod download %s", module)
	var mod struct{ Dir, Sum, Error string }
	require.NoError(t, json.Unmarshal(raw, &mod))
	require.Empty(t, mod.Error)
	require.Equal(t, sum, mod.Sum, "the hash of %s changed", module)
	return mod.Dir
}
