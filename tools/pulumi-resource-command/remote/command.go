// Package remote is command:remote:Command in this project's own pulumi-resource-command: our implementation of
// the subset of pulumi-command 1.2.1's schema that the devtools program uses (see ../main.go for why it exists).
// Tokens, property names, defaults and run semantics follow upstream 1.2.1; the inputs the program does not use
// (connection.proxy, password, privateKeyPassword, agentSocketPath) are refused by Check instead of ignored.
package remote

import (
	"context"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"devtools.local/tools/pulumi-resource-command/internal/cmdrun"
)

// Command runs a shell command on a host over SSH when the resource is created, updated and deleted.
type Command struct{}

// Logging is which of the command's streams are also written to the engine log (unset: both).
type Logging string

// Values makes Logging the enum command:remote:Logging.
func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: cmdrun.LogStdout, Value: cmdrun.LogStdout, Description: "Log stdout, not stderr"},
		{Name: cmdrun.LogStderr, Value: cmdrun.LogStderr, Description: "Log stderr, not stdout"},
		{Name: cmdrun.LogStdoutAndStderr, Value: cmdrun.LogStdoutAndStderr, Description: "Log both streams"},
		{Name: cmdrun.LogNone, Value: cmdrun.LogNone, Description: "Log neither stream"},
	}
}

func (l *Logging) value() string {
	if l == nil {
		return ""
	}
	return string(*l)
}

// Connection is command:remote:Connection without the parts this build refuses.
type Connection struct {
	Host           string   `pulumi:"host"`
	Port           *float64 `pulumi:"port,optional"`
	User           *string  `pulumi:"user,optional"`
	PrivateKey     *string  `pulumi:"privateKey,optional"     provider:"secret"`
	HostKey        *string  `pulumi:"hostKey,optional"`
	DialErrorLimit *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout *int     `pulumi:"perDialTimeout,optional"`
}

// Annotate sets upstream's defaults.
func (c *Connection) Annotate(a infer.Annotator) {
	a.Describe(&c, "How to reach the host: key authentication only, the host key pinned when hostKey is set.")
	a.SetDefault(&c.Port, 22)
	a.SetDefault(&c.User, "root")
	a.SetDefault(&c.DialErrorLimit, 10)
	a.SetDefault(&c.PerDialTimeout, 15)
	a.Describe(&c.HostKey, "The host's public key (authorized_keys form); when set, any other key is refused.")
	a.Describe(&c.DialErrorLimit, "Failed dials allowed before giving up; -1: no limit.")
	a.Describe(&c.PerDialTimeout, "Seconds each dial attempt (TCP connect, SSH handshake and authentication) "+
		"may take; 0: no limit.")
}

// CommandInputs are the inputs of command:remote:Command that this build implements.
type CommandInputs struct {
	Connection             *Connection       `pulumi:"connection"                      provider:"secret"`
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Triggers               *[]any            `pulumi:"triggers,optional"               provider:"replaceOnChanges"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	Logging                *Logging          `pulumi:"logging,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

// CommandOutputs are the inputs plus what the last create or update printed. As upstream, an input's secrecy
// carries over only to the output of the same name: stdout and stderr are secret only when the program asks for
// it (additionalSecretOutputs), which is why the program's secrets command does.
type CommandOutputs struct {
	CommandInputs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

// Annotate describes the resource.
func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "Runs `create` on a host over SSH when the resource is created, `update` (or `create`) when "+
		"its inputs change, `delete` when it is deleted. A change to `triggers` replaces it. This project's own "+
		"build of the subset of pulumi-command 1.2.1 that it uses.")
}

var (
	_ infer.CustomCheck[CommandInputs]                  = (*Command)(nil)
	_ infer.CustomUpdate[CommandInputs, CommandOutputs] = (*Command)(nil)
	_ infer.CustomDelete[CommandOutputs]                = (*Command)(nil)
)

// Check refuses the connection settings this build does not implement, then applies upstream's defaults.
func (*Command) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[CommandInputs], error) {
	news := req.NewInputs
	var refused []p.CheckFailure
	if conn, ok := news.GetOk("connection"); ok && conn.IsMap() {
		var m property.Map
		m, refused = cmdrun.Unsupported(conn.AsMap(), "connection.",
			"proxy", "password", "privateKeyPassword", "agentSocketPath")
		if key := m.Get("privateKey"); key.IsNull() {
			refused = append(refused, p.CheckFailure{Property: "connection.privateKey",
				Reason: "connection.privateKey is required: " + cmdrun.NotImplemented("authenticating without it")})
		}
		news = news.Set("connection", property.New(m).WithSecret(conn.Secret()).
			WithDependencies(conn.Dependencies()))
	}
	inputs, failures, err := infer.DefaultCheck[CommandInputs](ctx, news)
	return infer.CheckResponse[CommandInputs]{Inputs: inputs, Failures: append(refused, failures...)}, err
}

// Create runs `create` (nothing during a preview, or when `create` is unset).
func (*Command) Create(ctx context.Context, req infer.CreateRequest[CommandInputs],
) (infer.CreateResponse[CommandOutputs], error) {
	id, state, err := cmdrun.Create(ctx, req.Name, req.DryRun, req.Inputs.Create, CommandOutputs{CommandInputs: req.Inputs})
	return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, err
}

// Update runs `update`, or `create` when `update` is unset, with the previous outputs in the environment.
func (*Command) Update(ctx context.Context, req infer.UpdateRequest[CommandInputs, CommandOutputs],
) (infer.UpdateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs, Stdout: req.State.Stdout, Stderr: req.State.Stderr}
	state, err := cmdrun.Update(ctx, req.DryRun, req.Inputs.Update, req.Inputs.Create, state)
	return infer.UpdateResponse[CommandOutputs]{Output: state}, err
}

// Delete runs `delete`, if set, with the inputs and outputs recorded in the state.
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandOutputs]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, cmdrun.Delete(ctx, req.State.Delete, req.State)
}
