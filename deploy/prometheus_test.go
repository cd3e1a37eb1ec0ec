package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// promtool runs promtool (a Go tool of this module, pinned in go.mod:
// Prometheus's own rule checker and unit tester) in dir, which must be in
// the module.
func promtool(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"tool", "promtool"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestAlertRulesPassPromtool runs `promtool check rules` on the rules and
// `promtool test rules` on rules_test.yaml, whose synthetic series make
// each alert fire and not fire, and requires a test for every alert.
func TestAlertRulesPassPromtool(t *testing.T) {
	out, err := promtool("prometheus", "check", "rules", "rules.yaml")
	require.NoError(t, err, out)
	var rules ruleFile
	decodeFile(t, "prometheus/rules.yaml", &rules)
	n := 0
	for _, g := range rules.Groups {
		n += len(g.Rules)
	}
	require.Contains(t, out, "SUCCESS: "+strconv.Itoa(n)+" rules found")

	out, err = promtool("prometheus", "test", "rules", "rules_test.yaml")
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS")

	// Each alert is tested firing (an exp_alerts entry) and not firing (an
	// empty exp_alerts).
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	decodeFile(t, "prometheus/rules_test.yaml", &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.True(t, fires[r.Alert], "rules_test.yaml never makes %s fire", r.Alert)
			require.True(t, quiet[r.Alert], "rules_test.yaml never shows %s quiet", r.Alert)
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
		}
	}
}

// TestPromtoolTestsHaveTeeth shows the rule tests fail when a rule drifts:
// a copy of the rules with the retention threshold moved from 90% to 99%
// fails its test.
func TestPromtoolTestsHaveTeeth(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("prometheus", "rules.yaml"))
	require.NoError(t, err)
	drifted := strings.Replace(string(raw), "> 0.9 *", "> 0.99 *", 1)
	require.NotEqual(t, string(raw), drifted)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(drifted), 0o600))
	tests, err := os.ReadFile(filepath.Join("prometheus", "rules_test.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o600))
	out, err := promtool(".", "test", "rules", filepath.Join(dir, "rules_test.yaml"))
	require.Error(t, err, out)
	require.Contains(t, out, "PiivaultHeldOrderNearRetention")
}

// TestPrometheusRuleManifestIsTheRules holds the Prometheus Operator's
// PrometheusRule (validated against the operator's CRD schema with the
// other manifests, TestKubernetesManifestsValidate) to rules.yaml: after
// YAML decoding, its spec is the rules file, so the promtool tests cover it.
func TestPrometheusRuleManifestIsTheRules(t *testing.T) {
	var rules, manifest struct {
		Spec any `json:"spec"`
	}
	raw, err := os.ReadFile(filepath.Join("prometheus", "rules.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &rules.Spec))
	decodeFile(t, "kubernetes/prometheusrule.yaml", &manifest)
	require.NotNil(t, rules.Spec)
	require.Equal(t, rules.Spec, manifest.Spec, "deploy/kubernetes/prometheusrule.yaml's spec differs from deploy/prometheus/rules.yaml")
}

// TestPrometheusRuleSchemaHasTeeth shows the CRD schema rejects what the
// operator's API server would: a misspelt field and a wrong type.
func TestPrometheusRuleSchemaHasTeeth(t *testing.T) {
	schemas := schemaDir(t, "kubernetes")
	orig, err := os.ReadFile(filepath.Join("kubernetes", "prometheusrule.yaml"))
	require.NoError(t, err)
	for _, c := range []struct{ name, from, to, want string }{
		{"misspelt expr", "        - alert: PiivaultLockdownOn\n          expr:", "        - alert: PiivaultLockdownOn\n          exp:", "additional properties 'exp' not allowed"},
		{"for as a list", "for: 10m", "for: [10m]", "rules/0/for': got array, want string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			broken := strings.Replace(string(orig), c.from, c.to, 1)
			require.NotEqual(t, string(orig), broken)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheusrule.yaml"), []byte(broken), 0o600))
			out, err := kubeconform(schemas, dir)
			require.Error(t, err, out)
			require.Contains(t, out, c.want)
		})
	}
}

// TestAlertRulesNameOnlyExportedMetrics parses every rule's PromQL and
// requires each metric and label it names to be one piivault exports.
func TestAlertRulesNameOnlyExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	var rules ruleFile
	decodeFile(t, "prometheus/rules.yaml", &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names := checkPromQL(t, exported, r.Alert, r.Expr)
			require.NotEmpty(t, names, r.Alert)
		}
	}
}
