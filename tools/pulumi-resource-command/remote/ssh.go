// The SSH side of command:remote:Command in this project's own pulumi-resource-command (the subset of
// pulumi-command 1.2.1 that the program uses): dialling with upstream's retry rules, the pinned host key, and one
// session per run.
//
// Bounds (the schema is upstream's; where the behaviour differs, it says so here and in ../main.go):
//   - connection.perDialTimeout bounds each whole dial attempt: the TCP connect, the SSH handshake and
//     authentication. Upstream's description says "each dial attempt", but its implementation passes the value
//     to ssh.ClientConfig.Timeout, which bounds the TCP connect only: a peer that accepts TCP and never speaks SSH
//     holds upstream's dial forever.
//   - A command ends with the engine's operation: the resource's customTimeouts (the engine sends it as the
//     request's timeout, pulumi-go-provider turns it into the context's deadline) or a cancellation close the SSH
//     connection, and the step fails saying so. Upstream ignores the context once the command runs. Upstream's
//     schema has no per-command timeout input, so none is added; an operation without customTimeouts gets
//     defaultCommandTimeout instead of no bound at all.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"golang.org/x/crypto/ssh"

	"devtools.local/tools/pulumi-resource-command/internal/cmdrun"
)

// Backoff between failed dials, as upstream's (the Pulumi SDK's retry defaults): 100 ms, times 1.5, at most 5 s.
const (
	firstDelay = 100 * time.Millisecond
	maxDelay   = 5 * time.Second
)

// defaultCommandTimeout bounds one create, update or delete (dialling included) when the engine gives no timeout:
// longer than anything the program runs on a host (a host agent apply with its lock wait, pulls, `up --wait`,
// validation and a restore takes minutes), short enough that a wedged command ends the same day.
const defaultCommandTimeout = time.Hour

// commandContext is the context one operation runs in: the engine's, with defaultCommandTimeout when the engine
// set no deadline (no customTimeouts on the resource).
func commandContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultCommandTimeout)
}

func intOr(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}

// clientConfig: key authentication; with hostKey set, only that key (and so only its algorithm) is accepted,
// without it any host key is (upstream's behaviour).
func (c *Connection) clientConfig() (*ssh.ClientConfig, error) {
	if c.PrivateKey == nil {
		return nil, fmt.Errorf("connection.privateKey is required by this build")
	}
	signer, err := ssh.ParsePrivateKey([]byte(*c.PrivateKey))
	if err != nil {
		return nil, fmt.Errorf("connection.privateKey: %w", err)
	}
	user := "root"
	if c.User != nil {
		user = *c.User
	}
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		// No Timeout here: it would bound the TCP connect only; dialOnce bounds the whole attempt.
		// #nosec G106 -- no hostKey given: upstream accepts any host key; a pinned key replaces this below.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	if c.HostKey != nil {
		pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("connection.hostKey: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(pinned)
		cfg.HostKeyAlgorithms = []string{pinned.Type()}
	}
	return cfg, nil
}

// dialOnce is one dial attempt: TCP connect, SSH handshake and authentication, all within timeout (0: no bound
// but the context's), and given up at once when the context ends.
func dialOnce(ctx context.Context, addr string, cfg *ssh.ClientConfig, timeout time.Duration) (*ssh.Client, error) {
	attempt, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		attempt, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(attempt, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake reads and writes the connection: its deadline is the attempt's, and an ended context moves
	// it into the past, so a peer that never answers cannot hold the handshake.
	if deadline, ok := attempt.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(attempt, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	sshConn, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	watching := stop()
	if err == nil && !watching {
		_ = sshConn.Close() // the attempt ended as the handshake finished: its deadline may be in the past
		err = attempt.Err()
	}
	if err != nil {
		_ = conn.Close()
		if ctx.Err() == nil && (attempt.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
			return nil, fmt.Errorf("no SSH handshake within %v (connection.perDialTimeout): %w", timeout, err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sshConn, chans, reqs), nil
}

// dial connects, retrying every failure (refused, timed out, handshake or host key) until dialErrorLimit failures
// have been allowed (-1: forever), as upstream does; each attempt within perDialTimeout, all within the context.
func (c *Connection) dial(ctx context.Context) (*ssh.Client, error) {
	cfg, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	port := 22
	if c.Port != nil {
		port = int(*c.Port)
	}
	addr := net.JoinHostPort(c.Host, strconv.Itoa(port))
	limit := intOr(c.DialErrorLimit, 10)
	shown := "inf"
	if limit >= 0 {
		shown = strconv.Itoa(limit)
	}
	timeout := time.Duration(intOr(c.PerDialTimeout, 15)) * time.Second
	delay := firstDelay
	for failures := 1; ; failures++ {
		client, err := dialOnce(ctx, addr, cfg, timeout)
		if err == nil {
			return client, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s: %w (last error: %v)", addr, ctx.Err(), err)
		}
		if limit >= 0 && failures > limit {
			return nil, fmt.Errorf("dial %s: giving up after %d failed attempts: %w", addr, failures, err)
		}
		p.GetLogger(ctx).InfoStatusf("Dial %s %d/%s failed: retrying (%v)", addr, failures, shown, err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(time.Duration(float64(delay)*1.5), maxDelay)
	}
}

// Run runs cmd in one SSH session with this resource's stdin, environment and logging, and on success records its
// output. The previous outputs go into the environment first (best effort, as upstream: the server must accept
// them with AcceptEnv; a refusal is a warning). A refused `environment` entry is an error, as upstream.
func (s *CommandOutputs) Run(ctx context.Context, cmd string) error {
	if s.Connection == nil {
		return fmt.Errorf("connection is required")
	}
	ctx, cancel := commandContext(ctx)
	defer cancel()
	client, err := s.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	// The operation's end (customTimeouts, defaultCommandTimeout, a cancellation) closes the connection, which
	// ends session.Run below. What the command started on the host may go on running there.
	stop := context.AfterFunc(ctx, func() { _ = client.Close() })
	defer stop()
	session, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("opening an SSH session: %w", err)
	}
	defer func() { _ = session.Close() }()

	keys := make([]string, 0, len(s.Environment))
	for k := range s.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := session.Setenv(k, s.Environment[k]); err != nil {
			return fmt.Errorf("could not set environment variable %q (the SSH server accepts only the names its "+
				"AcceptEnv lists; or prefix the command: %s=value command): %w", k, k, err)
		}
	}
	for _, kv := range cmdrun.PreviousOutputEnv(s.AddPreviousOutputInEnv, s.Stdout, s.Stderr) {
		if err := session.Setenv(kv[0], kv[1]); err != nil {
			p.GetLogger(ctx).Warningf("Unable to set '%s' on the remote host (its SSH server must list it in "+
				"AcceptEnv); the command runs without it: %v", kv[0], err)
		}
	}
	if s.Stdin != nil && *s.Stdin != "" {
		session.Stdin = strings.NewReader(*s.Stdin)
	}
	out := cmdrun.NewOutput(ctx, s.Logging.value())
	session.Stdout, session.Stderr = out.Stdout(), out.Stderr()
	err = session.Run(cmd)
	out.Close()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("the command did not finish before the operation's deadline (the resource's "+
				"customTimeouts, else %v) or the engine cancelled it, and its SSH connection was closed: %w",
				defaultCommandTimeout, ctx.Err())
		}
		return out.Failure(err, cmd)
	}
	s.Stdout, s.Stderr = out.Result()
	return nil
}
