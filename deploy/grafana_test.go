package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// grafanaPanel is the part of a Grafana panel the test reads.
type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

// TestGrafanaDashboardNamesOnlyExportedMetrics loads the dashboard and
// parses every PromQL expression in it (panels, rows, the job variable):
// each metric must be one piivault exports, each label one that metric
// carries or Prometheus adds. It also checks what Grafana needs to import
// it: a uid, unique panel ids, a place on the grid, the data source
// variable on every query.
func TestGrafanaDashboardNamesOnlyExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("grafana/piivault.json")
	require.NoError(t, err)
	var dash struct {
		UID           string         `json:"uid"`
		Title         string         `json:"title"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string         `json:"name"`
				Type       string         `json:"type"`
				Definition string         `json:"definition"`
				Datasource map[string]any `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.Equal(t, "piivault", dash.UID)
	require.NotEmpty(t, dash.Title)
	require.GreaterOrEqual(t, dash.SchemaVersion, 36)

	exported := exportedMetrics(t)
	dataSource := map[string]any{"type": "prometheus", "uid": "${datasource}"}
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			require.False(t, ids[p.ID], "panel id %d used twice", p.ID)
			ids[p.ID] = true
			require.NotNil(t, p.GridPos, "panel %q has no place on the grid", p.Title)
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			require.Equal(t, dataSource, p.Datasource, p.Title)
			require.NotEmpty(t, p.Targets, "panel %q queries nothing", p.Title)
			for _, tg := range p.Targets {
				require.Equal(t, dataSource, tg.Datasource, p.Title)
				for _, n := range checkPromQL(t, exported, fmt.Sprintf("panel %q %s", p.Title, tg.RefID), tg.Expr) {
					used[n] = true
				}
			}
		}
	}
	walk(dash.Panels)

	// label_values(metric, label) in the variables.
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	var variables []string
	for _, v := range dash.Templating.List {
		variables = append(variables, v.Name)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		require.NotNil(t, m, "variable %s: want label_values(metric, label)", v.Name)
		checkPromQL(t, exported, "variable "+v.Name, m[1]+`{`+m[2]+`!=""}`)
		require.Equal(t, dataSource, v.Datasource, v.Name)
	}
	require.ElementsMatch(t, []string{"datasource", "job"}, variables)

	// What the issue asks the dashboard to show.
	for _, m := range []string{
		"piivault_http_requests_total",                  // ingest, 503s
		"piivault_reveals_total",                        // reveals by role and reason
		"piivault_orders_purged_total",                  // purges by reason
		"piivault_oldest_held_order_age_seconds",        // held-order age
		"piivault_webhook_events_total",                 // webhook outcomes
		"piivault_http_request_duration_seconds_bucket", // latency by route
		"piivault_audit_chain_intact",
		"piivault_build_info",
	} {
		require.True(t, used[m], "the dashboard does not show %s", m)
	}
	var unused []string
	for m := range exported {
		if strings.HasPrefix(m, "piivault_") && !used[m] && !used[m+"_bucket"] && !used[m+"_count"] {
			unused = append(unused, m)
		}
	}
	slices.Sort(unused)
	t.Logf("piivault metrics not on the dashboard: %v", unused)
}
