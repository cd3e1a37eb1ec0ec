package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	// Every package that registers a metric, as piivault serve links them:
	// their collectors land in the default registry, which serve's /metrics
	// exposes. TestEveryMetricPackageIsImported keeps this list whole.
	_ "piivault/audit"
	_ "piivault/compliance"
	_ "piivault/monitoring"
	_ "piivault/orders"
	_ "piivault/purge"
	_ "piivault/requests"
	_ "piivault/webhooks"
)

// targetLabels are the labels Prometheus itself adds to every scraped
// series (the Prometheus Operator's PodMonitor adds the pod's), which rules
// and dashboards may group by and select on.
var targetLabels = []string{"job", "instance", "pod", "namespace", "container", "endpoint", "service"}

// metric is one metric family piivault exports: its labels and, for
// piivault's own, its kind ("Counter", "Gauge", "Histogram", "Summary").
type metric struct {
	labels []string
	kind   string
}

// exportedMetrics is every metric family piivault's /metrics can show,
// with its labels: the descriptions of the collectors in the default
// registry. Describe, unlike Gather, also lists vectors that have no
// series yet (a counter by reason before the first purge). A description
// has no kind, so piivault's own are read from their definitions.
func exportedMetrics(t *testing.T) map[string]metric {
	t.Helper()
	reg, ok := prometheus.DefaultRegisterer.(*prometheus.Registry)
	require.True(t, ok, "the default registerer is a *prometheus.Registry")
	descs := make(chan *prometheus.Desc)
	go func() { reg.Describe(descs); close(descs) }()
	// Desc{fqName: "piivault_x", help: "…", unit: "", constLabels: {}, variableLabels: {a,b}}
	re := regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)
	kinds := definedMetrics(t)
	out := map[string]metric{}
	for d := range descs {
		m := re.FindStringSubmatch(d.String())
		require.NotNil(t, m, "a description the test cannot read: %s", d)
		var names []string
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				names = append(names, l)
			}
		}
		out[m[1]] = metric{labels: names, kind: kinds[m[1]]}
	}
	return out
}

// definedMetrics reads every piivault_ metric defined in the source of the
// module's packages (tests excluded) and its kind, by the promauto or
// prometheus constructor that makes it.
func definedMetrics(t *testing.T) map[string]string {
	t.Helper()
	named := regexp.MustCompile(`Name:\s*"(piivault_[a-z0-9_]+)"`)
	typed := regexp.MustCompile(`New(Counter|Gauge|Histogram|Summary)(?:Vec|Func)?\(\s*prometheus\.\w+Opts\{\s*Name:\s*"(piivault_[a-z0-9_]+)"`)
	out := map[string]string{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range named.FindAllStringSubmatch(string(raw), -1) {
			out[m[1]] = ""
		}
		for _, m := range typed.FindAllStringSubmatch(string(raw), -1) {
			out[m[2]] = m[1]
		}
		return nil
	})
	require.NoError(t, err)
	for name, kind := range out {
		require.NotEmpty(t, kind, "%s: the test cannot tell its kind from its definition", name)
	}
	return out
}

// TestEveryMetricPackageIsImported holds the imports above to the source:
// every piivault_ metric defined in a package of the module is in the
// registry this test reads.
func TestEveryMetricPackageIsImported(t *testing.T) {
	exported := exportedMetrics(t)
	var missing []string
	for name := range definedMetrics(t) {
		if _, ok := exported[name]; !ok {
			missing = append(missing, name)
		}
	}
	require.Empty(t, missing, "metrics defined in packages this test does not import")
	require.Contains(t, exported, "piivault_build_info")
}

// grafanaVars stands in for the dashboard's variables and Grafana's
// built-in intervals, so its expressions parse as PromQL.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m", "$__range", "1h",
	"${job}", "piivault", "$job", "piivault")

// checkPromQL requires expr to pass promqlProblems and returns the
// metrics it names.
func checkPromQL(t *testing.T, exported map[string]metric, where, expr string) []string {
	t.Helper()
	names, problems, err := promqlProblems(exported, expr)
	require.NoError(t, err, "%s: %s", where, expr)
	require.Empty(t, problems, "%s: %s", where, expr)
	return names
}

// promqlProblems parses expr (Grafana's variables replaced) and returns the
// metrics it names, and a problem for every metric piivault does not
// export and every label it selects on or groups by that none of the
// metrics it reads carries (nor Prometheus adds).
func promqlProblems(exported map[string]metric, expr string) (names, problems []string, err error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return nil, nil, err
	}
	// labelsOf is the labels of a series name: a family's own, or a
	// histogram's _bucket (with le), _sum or _count, or a summary's _sum
	// or _count.
	labelsOf := func(name string) ([]string, bool) {
		if m, ok := exported[name]; ok {
			return m.labels, true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			m, found := exported[base]
			switch {
			case !ok || !found:
			case m.kind == "Histogram" && suffix == "_bucket":
				return append(slices.Clone(m.labels), "le"), true
			case m.kind == "Histogram" || m.kind == "Summary" && suffix != "_bucket":
				return m.labels, true
			}
		}
		return nil, false
	}
	// known is the labels the selectors under n can carry.
	known := func(n parser.Node) []string {
		out := slices.Clone(targetLabels)
		parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				l, _ := labelsOf(vs.Name)
				out = append(out, l...)
			}
			return nil
		})
		return out
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			l, ok := labelsOf(n.Name)
			if !ok {
				problems = append(problems, fmt.Sprintf("piivault exports no metric %q", n.Name))
				return nil
			}
			names = append(names, n.Name)
			for _, m := range n.LabelMatchers {
				if m.Name != labels.MetricName && !slices.Contains(l, m.Name) && !slices.Contains(targetLabels, m.Name) {
					problems = append(problems, fmt.Sprintf("%s has no label %q", n.Name, m.Name))
				}
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			k := known(n.Expr)
			for _, g := range n.Grouping {
				if !slices.Contains(k, g) {
					problems = append(problems, fmt.Sprintf("no metric under `by (%s)` has that label", g))
				}
			}
		}
		return nil
	})
	return names, problems, nil
}

// TestPromQLCheckHasTeeth shows what the check of rules and dashboard
// refuses.
func TestPromQLCheckHasTeeth(t *testing.T) {
	exported := exportedMetrics(t)
	for _, c := range []struct{ name, expr, want string }{
		{"unknown metric", `rate(piivault_orders_stored_total[5m])`, `no metric "piivault_orders_stored_total"`},
		{"label it does not carry", `sum(rate(piivault_reveals_total{staff="alice"}[5m]))`, `has no label "staff"`},
		{"grouped by a label none carries", `sum by (username) (rate(piivault_reveals_total[5m]))`, "by (username)"},
		{"bucket of a metric that is not a histogram", `piivault_orders_held_bucket`, `no metric "piivault_orders_held_bucket"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, problems, err := promqlProblems(exported, c.expr)
			require.NoError(t, err)
			require.NotEmpty(t, problems)
			require.Contains(t, problems[0], c.want)
		})
	}
	names, problems, err := promqlProblems(exported,
		`histogram_quantile(0.99, sum by (route, le) (rate(piivault_http_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))`)
	require.NoError(t, err)
	require.Empty(t, problems)
	require.Equal(t, []string{"piivault_http_request_duration_seconds_bucket"}, names)
}
