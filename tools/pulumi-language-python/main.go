// pulumi-language-python: a small Python language host for the Pulumi CLI, written for this project.
//
// Upstream's host (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is a module of its own
// that the Go module proxy here does not serve (403 for every version tried, see scripts/pulumi-toolchain.sh).
// This one implements what `pulumi preview/up/destroy/refresh/about/plugin ls` need from a language host, on top
// of the exported Pulumi SDK: it resolves the project's virtualenv with sdk/v3/python/toolchain (Pulumi.yaml's
// runtime options `virtualenv` and `toolchain`), runs the program through the SDK's own
// `pulumi-language-python-exec` shim (shipped in the sdk/v3 module and installed beside this binary), reports the
// resource plugins of the installed Pulumi packages (their pulumi-plugin.json), installs dependencies and answers
// `about`. Not implemented (the CLI says so when asked): code generation (convert, import --generate-code,
// package gen-sdk), packing and linking of local SDKs, Python policy packs and plugins written in Python, the
// debugger and typechecker options.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set by the linker (-X main.version=...) to the Pulumi SDK version it is built against.
var version = "0.0.0-dev"

// The exit code the exec shim uses after it has shown the user an actionable message: the engine should stop
// without adding an error of its own.
const exitAfterUserMessage = 32

const execShim = "pulumi-language-python-exec"

func main() {
	tracing := flag.String("tracing", "", "Zipkin-compatible tracing endpoint")
	showVersion := flag.Bool("version", false, "print the version and exit")
	executor := flag.String("use-executor", "", "the exec shim to run programs with (default: "+execShim+
		" beside this binary)")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	// --logtostderr and -v (which the engine passes when it logs verbosely) are the logging package's own flags.
	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", *tracing)

	shim := *executor
	if shim == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("locating this executable: %w", err))
		}
		shim = filepath.Join(filepath.Dir(self), execShim)
	}
	if _, err := os.Stat(shim); err != nil {
		cmdutil.Exit(fmt.Errorf("missing the exec shim %s (install it beside this binary): %w", shim, err))
	}

	var engine string
	if flag.NArg() > 0 {
		engine = flag.Arg(0)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cancel := make(chan bool)
	go func() { <-ctx.Done(); close(cancel) }()
	if engine != "" {
		// Exit when the engine goes away.
		if err := rpcutil.Healthcheck(ctx, engine, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("engine health check: %w", err))
		}
	}

	h := newHost(shim, engine, *tracing)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("starting the language host's RPC server: %w", err))
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC server: %w", err))
	}
}

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	shim, tracing string

	mu     sync.Mutex
	engine string // from the command line, or from Handshake

	stopRuns context.Context // cancelled by the Cancel RPC
	cancel   context.CancelFunc
}

func newHost(shim, engine, tracing string) *host {
	ctx, cancel := context.WithCancel(context.Background())
	return &host{shim: shim, engine: engine, tracing: tracing, stopRuns: ctx, cancel: cancel}
}

func (h *host) engineAddress() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engine
}

// pythonOptions reads Pulumi.yaml's runtime options (virtualenv, toolchain) as the upstream host does.
func pythonOptions(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	if info == nil {
		return toolchain.PythonOptions{}, errors.New("the engine sent no program info")
	}
	opts := toolchain.PythonOptions{Root: info.RootDirectory, ProgramDir: info.ProgramDirectory}
	values := info.GetOptions().AsMap()
	str := func(key string) (string, error) {
		v, ok := values[key]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("runtime option %q must be a string", key)
		}
		return s, nil
	}
	venv, err := str("virtualenv")
	if err != nil {
		return opts, err
	}
	opts.Virtualenv = venv
	tc, err := str("toolchain")
	if err != nil {
		return opts, err
	}
	switch tc {
	case "", "auto":
		opts.Toolchain = toolchain.Auto
	case "pip":
		opts.Toolchain = toolchain.Pip
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return opts, fmt.Errorf("unsupported runtime option toolchain: %q", tc)
	}
	if checker, err := str("typechecker"); err != nil || checker != "" {
		return opts, fmt.Errorf("the runtime option typechecker is not supported by this language host")
	}
	return opts, nil
}

func resolve(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts, err := pythonOptions(info)
	if err != nil {
		return nil, err
	}
	return toolchain.ResolveToolchain(opts)
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	h.engine = req.GetEngineAddress()
	h.mu.Unlock()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// listPluginFiles prints, as JSON, every installed distribution that ships a pulumi-plugin.json: its name,
// version and that file's content.
const listPluginFiles = `
import json, importlib.metadata as md
out = []
for d in md.distributions():
    for f in d.files or []:
        if f.name == "pulumi-plugin.json":
            try:
                out.append({"dist": d.metadata["Name"], "version": d.version, "plugin": json.loads(f.read_text())})
            except Exception:
                pass
print(json.dumps(out))
`

type pluginFile struct {
	Dist    string                  `json:"dist"`
	Version string                  `json:"version"`
	Plugin  plugin.PulumiPluginJSON `json:"plugin"`
}

func parameterization(p *plugin.PulumiParameterizationJSON) *pulumirpc.PackageParameterization {
	if p == nil {
		return nil
	}
	return &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
}

// pep440Release matches the versions we can turn into a plugin version: N.N.N with an optional a/b/rc N.
var pep440Release = regexp.MustCompile(`^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(a|b|rc)(\d+))?$`)

func pluginVersion(v string) (string, bool) {
	m := pep440Release.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	part := func(s string) string {
		if s == "" {
			return "0"
		}
		return s
	}
	out := "v" + m[1] + "." + part(m[2]) + "." + part(m[3])
	if m[4] != "" {
		out += "-" + map[string]string{"a": "alpha", "b": "beta", "rc": "rc"}[m[4]] + "." + m[5]
	}
	return out, true
}

func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginFiles)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the installed Pulumi packages (%s): %w", strings.Join(cmd.Args[:2], " "), err)
	}
	var files []pluginFile
	if err := json.Unmarshal(out, &files); err != nil {
		return nil, fmt.Errorf("reading the installed Pulumi packages: %w", err)
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, f := range files {
		p := f.Plugin
		if !p.Resource {
			continue
		}
		name := p.Name
		if name == "" {
			name = strings.TrimPrefix(strings.ToLower(f.Dist), "pulumi-")
		}
		ver := p.Version
		if ver == "" {
			var ok bool
			if ver, ok = pluginVersion(f.Version); !ok {
				logging.V(5).Infof("skipping %s %s: no plugin version can be derived", f.Dist, f.Version)
				continue
			}
		}
		if !strings.HasPrefix(ver, "v") {
			ver = "v" + ver
		}
		resp.Packages = append(resp.Packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: name, Version: ver, Server: p.Server,
			Parameterization: parameterization(p.Parameterization),
			Extension:        parameterization(p.ExtensionParameterization),
		})
	}
	return resp, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	pkgs, err := h.GetRequiredPackages(ctx, &pulumirpc.GetRequiredPackagesRequest{Info: req.GetInfo()})
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range pkgs.Packages {
		if p.Parameterization == nil {
			resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
				Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server})
		}
	}
	return resp, nil
}

// shimArgs is the exec shim's command line for a run request (see its argparse options).
func (h *host) shimArgs(req *pulumirpc.RunRequest) []string {
	args := []string{"-u", h.shim}
	add := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress())
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	entry := req.GetInfo().GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	args = append(args, entry)
	return append(args, req.GetArgs()...)
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "this language host does not support attaching a debugger"}, nil
	}
	if h.engineAddress() == "" {
		return nil, errors.New("no engine address: the engine must pass it on the command line or in Handshake")
	}
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{} // the SDK expects an object, never null
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("encoding the stack configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("encoding the secret configuration keys: %w", err)
	}

	// The program stops when the Cancel RPC arrives or the engine abandons this request.
	runCtx, stop := context.WithCancel(h.stopRuns)
	defer stop()
	context.AfterFunc(ctx, stop)
	cmd, err := tc.Command(runCtx, h.shimArgs(req)...)
	if err != nil {
		return nil, err
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(keys))
	logging.V(5).Infof("running %s", strings.Join(cmd.Args, " "))

	err = cmd.Run()
	_ = os.Stdout.Sync()
	_ = os.Stderr.Sync()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == exitAfterUserMessage:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() > 0:
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{Error: "program exited unexpectedly: " + err.Error()}, nil
	default:
		return &pulumirpc.RunResponse{
			Error: "could not run the Python program (" + strings.Join(cmd.Args[:2], " ") + "): " + err.Error()}, nil
	}
}

// streamWriter sends what is written to it as InstallDependencies output.
type streamWriter struct {
	mu     *sync.Mutex
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append([]byte(nil), p...)
	msg := &pulumirpc.InstallDependenciesResponse{Stdout: data}
	if w.stderr {
		msg = &pulumirpc.InstallDependenciesResponse{Stderr: data}
	}
	if err := w.stream.Send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	if req.GetIsPlugin() {
		return status.Error(codes.Unimplemented, "this language host does not install dependencies of plugins")
	}
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var stdout, stderr io.Writer = streamWriter{&mu, stream, false}, streamWriter{&mu, stream, true}
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetDirectory()
	}
	return tc.InstallDependencies(stream.Context(), dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"toolchainVersion": info.ToolchainVersion.String()},
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolve(req.GetInfo())
	if err != nil {
		return nil, err
	}
	pkgs, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pkgs {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
	}
	return resp, nil
}
