// Package deploy holds deployment examples for piivault serve: a systemd
// unit (systemd/), Kubernetes manifests (kubernetes/, with a PodMonitor and
// a PrometheusRule for the Prometheus Operator), Prometheus alert rules
// with their promtool tests (prometheus/) and a Grafana dashboard
// (grafana/). It has no code; its tests check the examples with systemd's
// own analyzer, with kubeconform against the Kubernetes API's published
// schemas and the Prometheus Operator's CRDs, with promtool, and hold every
// PromQL expression to the metrics piivault exports.
package deploy
