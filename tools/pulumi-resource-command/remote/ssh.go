// The SSH side of command:remote:Command in this project's own pulumi-resource-command (the subset of
// pulumi-command 1.2.1 that the program uses): dialling with upstream's retry rules, the pinned host key, and one
// session per run.
package remote

import (
	"context"
	"fmt"
	"net"
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
		User:    user,
		Auth:    []ssh.AuthMethod{ssh.PublicKeys(signer)},
		Timeout: time.Duration(intOr(c.PerDialTimeout, 15)) * time.Second,
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

// dial connects, retrying every failure (refused, timed out, handshake or host key) until dialErrorLimit failures
// have been allowed (-1: forever), as upstream does.
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
	delay := firstDelay
	for failures := 1; ; failures++ {
		client, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			return client, nil
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
	client, err := s.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
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
		return out.Failure(err, cmd)
	}
	s.Stdout, s.Stderr = out.Result()
	return nil
}
