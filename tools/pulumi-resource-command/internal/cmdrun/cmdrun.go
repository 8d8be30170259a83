// Package cmdrun holds what the local and the remote Command share in this project's own pulumi-resource-command
// (our implementation of the subset of pulumi-command 1.2.1's schema that the program uses; see ../../main.go):
// capturing a command's two streams, copying the chosen ones to the engine log line by line, the error of a failed
// command, the previous-output environment variables, and refusing inputs this build does not implement.
package cmdrun

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
)

// The variables that carry the previous create/update's stdout and stderr into the next run (when
// addPreviousOutputInEnv is unset or true, and only when non-empty), as upstream.
const (
	EnvStdout = "PULUMI_COMMAND_STDOUT"
	EnvStderr = "PULUMI_COMMAND_STDERR"
)

// The values of the Logging enums of both modules.
const (
	LogStdout          = "stdout"
	LogStderr          = "stderr"
	LogStdoutAndStderr = "stdoutAndStderr"
	LogNone            = "none"
)

// Output collects one run's stdout and stderr separately (the outputs) and interleaved (the error message), and
// copies the streams chosen by `logging` to the engine log, one status message per line. The two streams may be
// written from different goroutines (ssh and os/exec copy them concurrently).
type Output struct {
	mu      sync.Mutex
	logger  p.Logger
	streams [2]bytes.Buffer // stdout, stderr
	both    bytes.Buffer
	logs    [2]bool
	pending [2][]byte // the unfinished last line of each logged stream
}

// NewOutput starts a capture; logging is the resource's `logging` input ("" when unset: both streams).
func NewOutput(ctx context.Context, logging string) *Output {
	o := &Output{logger: p.GetLogger(ctx)}
	o.logs[0] = logging == "" || logging == LogStdout || logging == LogStdoutAndStderr
	o.logs[1] = logging == "" || logging == LogStderr || logging == LogStdoutAndStderr
	return o
}

type stream struct {
	o *Output
	i int
}

func (s stream) Write(b []byte) (int, error) {
	o := s.o
	o.mu.Lock()
	defer o.mu.Unlock()
	o.streams[s.i].Write(b)
	o.both.Write(b)
	if o.logs[s.i] {
		o.pending[s.i] = append(o.pending[s.i], b...)
		for {
			n := bytes.IndexByte(o.pending[s.i], '\n')
			if n < 0 {
				break
			}
			o.logger.InfoStatus(string(o.pending[s.i][:n]))
			o.pending[s.i] = o.pending[s.i][n+1:]
		}
	}
	return len(b), nil
}

// Stdout is the writer for the command's standard output.
func (o *Output) Stdout() io.Writer { return stream{o, 0} }

// Stderr is the writer for the command's standard error.
func (o *Output) Stderr() io.Writer { return stream{o, 1} }

// Close logs what is left of unfinished lines; call it once the command has exited.
func (o *Output) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.pending {
		if len(o.pending[i]) > 0 {
			o.logger.InfoStatus(string(o.pending[i]))
			o.pending[i] = nil
		}
	}
}

// Result is the stdout and stderr outputs: the captured text without one trailing newline, as upstream.
func (o *Output) Result() (stdout, stderr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.TrimSuffix(o.streams[0].String(), "\n"), strings.TrimSuffix(o.streams[1].String(), "\n")
}

// Failure is the error of a command that could not run or exited non-zero: the cause, the command, and everything
// it printed (both streams, interleaved), in upstream's form.
func (o *Output) Failure(err error, command string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Errorf("%w: running %q:\n%s", err, command, o.both.String())
}

// PreviousOutputEnv is the previous outputs as environment variables, when they are to be passed on.
func PreviousOutputEnv(add *bool, stdout, stderr string) [][2]string {
	if add != nil && !*add {
		return nil
	}
	var env [][2]string
	if stdout != "" {
		env = append(env, [2]string{EnvStdout, stdout})
	}
	if stderr != "" {
		env = append(env, [2]string{EnvStderr, stderr})
	}
	return env
}

// Unsupported splits off the keys of m that this build does not implement: m without them (what the default check
// may decode) and one check failure for each key that is set (non-null), named prefix+key.
func Unsupported(m property.Map, prefix string, keys ...string) (property.Map, []p.CheckFailure) {
	var failures []p.CheckFailure
	for _, k := range keys {
		v, ok := m.GetOk(k)
		if !ok {
			continue
		}
		m = m.Delete(k)
		if v.IsNull() {
			continue
		}
		failures = append(failures, p.CheckFailure{Property: prefix + k, Reason: NotImplemented(prefix + k)})
	}
	return m, failures
}

// NotImplemented says that an input is refused because this build does not implement it.
func NotImplemented(what string) string {
	return fmt.Sprintf("%s is not supported by this project's own pulumi-resource-command (the subset of "+
		"pulumi-command 1.2.1 that the devtools program uses, tools/pulumi-resource-command); use the upstream "+
		"plugin for it", what)
}
