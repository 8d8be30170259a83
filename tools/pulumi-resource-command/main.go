// pulumi-resource-command: OUR OWN implementation of the subset of pulumi-command 1.2.1's schema that this project's
// Pulumi program uses, built because the upstream provider cannot be built here: its Go module
// github.com/pulumi/pulumi-command/provider is not served by the Go module proxy (404 for v1.2.1, 403 for
// pseudo-versions). Production CI uses the real upstream plugin (the one the Python SDK pin
// pulumi_command==1.2.1 names); this binary only lets the engine on this machine run the program.
//
// What it serves, with upstream 1.2.1's tokens, property names, defaults and semantics (studied from upstream's
// source and schema, not copied):
//
//	command:remote:Command  connection {host, port=22, user=root, privateKey (secret), hostKey (pinned when set),
//	                        dialErrorLimit=10 (-1: unlimited), perDialTimeout=15}, create, update, delete, stdin,
//	                        triggers, environment, logging, addPreviousOutputInEnv -> stdout, stderr
//	command:local:Command   create, update, delete, triggers, environment, dir, interpreter=["/bin/sh","-c"],
//	                        stdin, logging, addPreviousOutputInEnv -> stdout, stderr
//
// Bounds, where this build differs from upstream 1.2.1 in behaviour (never in schema; remote/ssh.go has the
// details): perDialTimeout bounds each whole dial attempt (TCP connect, SSH handshake, authentication), not only
// the TCP connect; a remote command ends when the engine's operation does (the resource's customTimeouts, or a
// cancellation), and an operation without customTimeouts ends after one hour (upstream: no bound). Upstream's
// schema has no per-command timeout input, so none is added.
//
// Create runs `create`; an update runs `update`, else `create`; delete runs `delete` with the previous outputs
// in PULUMI_COMMAND_STDOUT/STDERR; a non-zero exit fails the step with the output in the error. `triggers` are
// replaceOnChanges; the diff does not ask for delete-before-replace, so a replacement is created before the old
// resource is deleted, as upstream. Not implemented, and refused by Check with a clear message rather than
// ignored: connection.proxy, password, privateKeyPassword, agentSocketPath (nor SSH_AUTH_SOCK), local
// assetPaths/archivePaths, command:remote:CopyToRemote, CopyFile and the local:run function (the engine's "unknown
// resource type" answers those).
//
// Built and registered by scripts/pulumi-toolchain.sh (pulumi plugin install resource command 1.2.1 --file ...).
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/middleware/schema"

	"devtools.local/tools/pulumi-resource-command/local"
	"devtools.local/tools/pulumi-resource-command/remote"
)

// version is the upstream version whose schema subset this implements (the Python SDK pin); the toolchain
// script sets it with -X main.version=...
var version = "1.2.1"

func main() {
	provider := infer.Provider(infer.Options{
		Metadata: schema.Metadata{
			DisplayName: "Command",
			Description: "The devtools project's own build of the subset of pulumi-command " + version +
				" that its program uses (local and remote Command); not the upstream provider.",
			License:   "Apache-2.0",
			Publisher: "devtools",
		},
		Resources: []infer.InferredResource{
			infer.Resource(&local.Command{}),
			infer.Resource(&remote.Command{}),
		},
	})
	if err := p.RunProvider(context.Background(), "command", version, provider); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}
