// Package codegen holds the one type docker-build's provider uses from the .NET code generator: the C# language
// section of a package schema (its JSON field names are the schema's).
package codegen

// CSharpPackageInfo is the "csharp" entry of a schema's language map.
type CSharpPackageInfo struct {
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
}
