// Package deploy holds deployment examples for piivault serve: a systemd
// unit (systemd/) and Kubernetes manifests (kubernetes/). It has no code;
// its tests check the examples with systemd's own analyzer and with
// kubeconform against the Kubernetes API's published schemas.
package deploy
