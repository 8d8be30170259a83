// Tests of the SSH side's bounds, against loopback peers only: a listener that accepts TCP and never answers the
// SSH handshake, and an SSH server (golang.org/x/crypto/ssh) whose command never ends.
package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func clientKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), sshPub
}

// silentListener accepts every connection, reads and discards what the client sends, and never writes a byte:
// a TCP connect succeeds, the SSH handshake never completes. It counts the connections it accepted.
func silentListener(t *testing.T) (port int, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	var conns []net.Conn
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

func connection(port int, key string, perDial, errorLimit int) *Connection {
	p := float64(port)
	user := "root"
	return &Connection{Host: "127.0.0.1", Port: &p, User: &user, PrivateKey: &key, PerDialTimeout: &perDial,
		DialErrorLimit: &errorLimit}
}

// The rule: perDialTimeout bounds each whole dial attempt (TCP connect, SSH handshake and authentication), as
// upstream's schema describes it ("Max number of seconds for each dial attempt"). The risk: a peer that accepts
// TCP and never speaks SSH (a wedged sshd, a half-open proxy) held `pulumi up` until the CI job's own timeout.
func TestDialGivesUpOnAServerThatNeverAnswersTheHandshake(t *testing.T) {
	port, accepted := silentListener(t)
	key, _ := clientKey(t)
	conn := connection(port, key, 1, 1) // 1 s per attempt, one retry: two attempts

	result := make(chan error, 1)
	start := time.Now()
	go func() {
		client, err := conn.dial(context.Background())
		if client != nil {
			_ = client.Close()
		}
		result <- err
	}()
	select {
	case err := <-result:
		elapsed := time.Since(start)
		if err == nil {
			t.Fatal("dial succeeded against a server that never answers the handshake")
		}
		if !strings.Contains(err.Error(), "giving up after 2 failed attempts") ||
			!strings.Contains(err.Error(), "no SSH handshake within 1s") {
			t.Fatalf("unexpected error: %v", err)
		}
		if elapsed < 2*time.Second || elapsed > 6*time.Second {
			t.Fatalf("two attempts of 1 s took %v", elapsed)
		}
		if n := accepted.Load(); n != 2 {
			t.Fatalf("the server accepted %d connections, want 2 (one per attempt)", n)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dial still waiting for the handshake after 15 s: no bound on the SSH handshake")
	}
}

// The rule: the engine's cancellation ends a dial at once, retries included. The risk: Ctrl-C (or the operation's
// customTimeouts) waits for every remaining attempt.
func TestDialStopsWhenTheContextEnds(t *testing.T) {
	port, _ := silentListener(t)
	key, _ := clientKey(t)
	conn := connection(port, key, 30, -1) // 30 s per attempt, no limit
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	result := make(chan error, 1)
	start := time.Now()
	go func() {
		client, err := conn.dial(ctx)
		if client != nil {
			_ = client.Close()
		}
		result <- err
	}()
	select {
	case err := <-result:
		if err == nil || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
			t.Fatalf("want the context's deadline in the error, got %v", err)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("dial took %v after a 500 ms context", elapsed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dial still waiting 15 s after its context ended")
	}
}

// hangingServer is an SSH server on loopback that accepts the given client key and starts every command, which
// then never ends (no exit status is ever sent). It reports each command it was asked to run.
func hangingServer(t *testing.T, authorized ssh.PublicKey) (port int, commands chan string) {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(authorized.Marshal()) {
			return &ssh.Permissions{}, nil
		}
		return nil, io.EOF
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	commands = make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveHanging(c, cfg, commands)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, commands
}

func serveHanging(c net.Conn, cfg *ssh.ServerConfig, commands chan<- string) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer func() { _ = sc.Close() }()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for req := range requests {
				if req.Type == "exec" && len(req.Payload) > 4 {
					commands <- string(req.Payload[4:])
				}
				_ = req.Reply(req.Type == "exec" || req.Type == "env", nil)
			}
			_ = ch.Close()
		}()
	}
}

// The rule: a command ends when the engine's operation does (its customTimeouts, or a cancellation): the session
// is closed and the step fails with a message saying so. The risk: a command that never returns (a wedged host
// agent, a stuck `cloud-init status --wait`) holds `pulumi up` forever, whatever timeout the program set.
func TestRunEndsWhenTheOperationTimesOut(t *testing.T) {
	key, pub := clientKey(t)
	port, commands := hangingServer(t, pub)
	state := CommandOutputs{CommandInputs: CommandInputs{Connection: connection(port, key, 5, 0)}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	result := make(chan error, 1)
	start := time.Now()
	go func() { result <- state.Run(ctx, "sleep infinity") }()
	select {
	case err := <-result:
		if got := <-commands; got != "sleep infinity" {
			t.Fatalf("the server ran %q", got)
		}
		if err == nil || !strings.Contains(err.Error(), "did not finish before the operation's deadline") {
			t.Fatalf("unexpected error: %v", err)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("Run returned %v after a 1 s deadline", elapsed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run still waiting for the command 15 s after the operation's 1 s deadline")
	}
}

// The rule: without an engine timeout a command still has a bound (defaultCommandTimeout), and an engine timeout
// is kept as it is. The risk: an operation with no customTimeouts waits for a hung command forever.
func TestCommandContextBoundsAnOperationWithoutATimeout(t *testing.T) {
	ctx, cancel := commandContext(context.Background())
	defer cancel()
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) < defaultCommandTimeout-time.Minute || time.Until(deadline) > defaultCommandTimeout {
		t.Fatalf("deadline %v (set: %v), want about %v from now", deadline, ok, defaultCommandTimeout)
	}
	engine, engineCancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer engineCancel()
	want, _ := engine.Deadline()
	ctx, cancel = commandContext(engine)
	defer cancel()
	if got, _ := ctx.Deadline(); !got.Equal(want) {
		t.Fatalf("the engine's deadline %v became %v", want, got)
	}
}
