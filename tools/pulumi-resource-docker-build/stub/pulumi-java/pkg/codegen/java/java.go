// Package java holds the one type docker-build's provider uses from the Java code generator: the Java language
// section of a package schema. Field names and JSON keys are the schema's, so the provider reports the same
// schema as upstream's build (checked against the schema.json shipped in the provider's module).
package java

// PackageInfo is the "java" entry of a schema's language map.
type PackageInfo struct {
	BasePackage                     string            `json:"basePackage"`
	BuildFiles                      string            `json:"buildFiles,omitempty"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion,omitempty"`
	GradleTest                      string            `json:"gradleTest"`
}
