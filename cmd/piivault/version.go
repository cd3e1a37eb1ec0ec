package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is piivault's release, the newest entry of CHANGELOG.md
// (TestVersionAgreesWithTheChangelog holds the two together). A release
// build may set it with -ldflags "-X main.version=…".
var version = "0.1.0"

// buildInfo is what `piivault version` reports.
type buildInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit"`
}

// readBuildInfo reads the Go version and the commit the binary was built
// from (vcs.revision, stamped by `go build` in a git checkout); "unknown"
// when the build carries none (go run, go test, -buildvcs=false).
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Commit: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.GoVersion != "" {
		b.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			b.Commit = s.Value
		}
	}
	return b
}

// printVersion writes `piivault version [--json]`.
func printVersion(w io.Writer, asJSON bool) error {
	b := readBuildInfo()
	if asJSON {
		return json.NewEncoder(w).Encode(b)
	}
	_, err := fmt.Fprintf(w, "piivault %s (%s, commit %s)\n", b.Version, b.GoVersion, b.Commit)
	return err
}
