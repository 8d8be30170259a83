// Package local is command:local:Command in this project's own pulumi-resource-command: our implementation of
// the subset of pulumi-command 1.2.1's schema that the devtools program uses (see ../main.go for why it exists).
// Tokens, property names, defaults and run semantics follow upstream 1.2.1; assetPaths and archivePaths (and so
// the assets and archive outputs) are not implemented and are refused by Check instead of ignored.
package local

import (
	"context"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-go-provider/infer"

	"devtools.local/tools/pulumi-resource-command/internal/cmdrun"
)

// Command runs a command on the machine running Pulumi when the resource is created, updated and deleted.
type Command struct{}

// Logging is which of the command's streams are also written to the engine log (unset: both).
type Logging string

// Values makes Logging the enum command:local:Logging.
func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: cmdrun.LogStdout, Value: cmdrun.LogStdout, Description: "Log stdout, not stderr"},
		{Name: cmdrun.LogStderr, Value: cmdrun.LogStderr, Description: "Log stderr, not stdout"},
		{Name: cmdrun.LogStdoutAndStderr, Value: cmdrun.LogStdoutAndStderr, Description: "Log both streams"},
		{Name: cmdrun.LogNone, Value: cmdrun.LogNone, Description: "Log neither stream"},
	}
}

// CommandInputs are the inputs of command:local:Command that this build implements.
type CommandInputs struct {
	Create                 *string           `pulumi:"create,optional"`
	Update                 *string           `pulumi:"update,optional"`
	Delete                 *string           `pulumi:"delete,optional"`
	Triggers               *[]any            `pulumi:"triggers,optional"               provider:"replaceOnChanges"`
	Stdin                  *string           `pulumi:"stdin,optional"`
	Logging                *Logging          `pulumi:"logging,optional"`
	Interpreter            *[]string         `pulumi:"interpreter,optional"`
	Dir                    *string           `pulumi:"dir,optional"`
	Environment            map[string]string `pulumi:"environment,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

// CommandOutputs are the inputs plus what the last create or update printed (secret when an input is).
type CommandOutputs struct {
	CommandInputs
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

// Annotate describes the resource.
func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "Runs `create` locally when the resource is created, `update` (or `create`) when its inputs "+
		"change, `delete` when it is deleted. A change to `triggers` replaces it. This project's own build of the "+
		"subset of pulumi-command 1.2.1 that it uses.")
}

// Annotate documents the interpreter's default.
func (c *CommandInputs) Annotate(a infer.Annotator) {
	a.Describe(&c.Interpreter, "The program and arguments that run the command; default [\"/bin/sh\", \"-c\"].")
	a.Describe(&c.Dir, "The working directory; default the provider's (the project directory).")
}

var (
	_ infer.CustomCheck[CommandInputs]                  = (*Command)(nil)
	_ infer.CustomUpdate[CommandInputs, CommandOutputs] = (*Command)(nil)
	_ infer.CustomDelete[CommandOutputs]                = (*Command)(nil)
)

// Check refuses assetPaths and archivePaths, then decodes the rest.
func (*Command) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[CommandInputs], error) {
	news, refused := cmdrun.Unsupported(req.NewInputs, "", "assetPaths", "archivePaths")
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

// Run runs cmd through the interpreter in dir, with the provider's environment plus `environment` plus the
// previous outputs, and on success records its output.
func (s *CommandOutputs) Run(ctx context.Context, cmd string) error {
	argv := []string{"/bin/sh", "-c"}
	if s.Interpreter != nil && len(*s.Interpreter) > 0 {
		argv = append([]string(nil), *s.Interpreter...)
	}
	argv = append(argv, cmd)
	c := exec.CommandContext(ctx, argv[0], argv[1:]...) // #nosec G204 -- running the given command is the point
	if s.Dir != nil {
		c.Dir = *s.Dir
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		c.Dir = wd
	}
	c.Env = os.Environ()
	keys := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Env = append(c.Env, k+"="+s.Environment[k])
	}
	for _, kv := range cmdrun.PreviousOutputEnv(s.AddPreviousOutputInEnv, s.Stdout, s.Stderr) {
		c.Env = append(c.Env, kv[0]+"="+kv[1])
	}
	if s.Stdin != nil && *s.Stdin != "" {
		c.Stdin = strings.NewReader(*s.Stdin)
	}
	logging := ""
	if s.Logging != nil {
		logging = string(*s.Logging)
	}
	out := cmdrun.NewOutput(ctx, logging)
	c.Stdout, c.Stderr = out.Stdout(), out.Stderr()
	err := c.Run()
	out.Close()
	if err != nil {
		return out.Failure(err, cmd)
	}
	s.Stdout, s.Stderr = out.Result()
	return nil
}
