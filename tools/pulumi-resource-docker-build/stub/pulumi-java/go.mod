// Stand-in for github.com/pulumi/pulumi-java, which the Go module proxy here does not serve (403). docker-build's
// provider imports only PackageInfo from it, to fill the Java section of the schema it reports; nothing at run
// time depends on it.
module github.com/pulumi/pulumi-java

go 1.26
