// Stand-in for github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3, which the Go module proxy here does not
// serve (403). docker-build's provider imports only CSharpPackageInfo from it, to fill the C# section of the schema
// it reports; nothing at run time depends on it.
module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3

go 1.26
