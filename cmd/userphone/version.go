package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/pace/userphone/openapi"
)

// version is set at release builds with -ldflags "-X main.version=v1.2.3";
// otherwise the Go toolchain's stamp of the main module is used.
var version = ""

// printVersion prints what an operator needs to tell builds apart: the
// version, the commit it was built from, and the contract it serves (the
// spec's version, and a hash that changes with any edit of the spec).
func printVersion(w io.Writer) error {
	v, commit := version, "unknown (built without VCS information, e.g. by go run)"
	goVersion := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
		var revision, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if revision != "" {
			commit = revision
			if modified == "true" {
				commit += " (with uncommitted changes)"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	doc, err := openapi.Load()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(openapi.Spec)
	_, err = fmt.Fprintf(w, "userphone %s\ncommit  %s\nspec    %s %s (sha256 %s)\ngo      %s\n",
		v, commit, doc.Info.Title, doc.Info.Version, hex.EncodeToString(sum[:6]), goVersion)
	return err
}
