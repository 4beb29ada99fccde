package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExitBudgetExceeded is the exit code of `aiwatt run` when the command was
// stopped for exceeding its energy budget, as timeout(1) exits 124 when its
// command times out.
const ExitBudgetExceeded = 124

// Exit codes for a command that could not be run, as env(1), nice(1) and
// timeout(1) use them.
const (
	// ExitFailure is a failure of aiwatt run itself.
	ExitFailure = 125
	// ExitCannotInvoke is a command that was found but could not be run.
	ExitCannotInvoke = 126
	// ExitNotFound is a command that was not found.
	ExitNotFound = 127
)

// ForwardedSignals are the signals `aiwatt run` passes on to the command's
// process group.
var ForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// ChildOptions configure StartChild.
type ChildOptions struct {
	// Stdin, Stdout and Stderr are passed to the command (nil: /dev/null).
	Stdin, Stdout, Stderr *os.File
	// Env is the command's environment; nil means this process's.
	Env []string
	// Foreground puts the command's process group in the foreground of the
	// terminal on Stdin, so that it can read from it and receives the
	// terminal's Ctrl-C directly. Use it only when Stdin is this process's
	// controlling terminal and this process is in its foreground.
	Foreground bool
}

// Child is a command started in its own process group.
type Child struct {
	cmd        *exec.Cmd
	pgid       int
	foreground bool
	tty        *os.File

	done  chan struct{}
	state *os.ProcessState
	err   error

	mu       sync.Mutex
	stopping bool
}

// StartChild starts argv in a new process group whose ID is the command's
// PID. A command that cannot be found or run returns an error for which
// StartExitCode gives 127 or 126.
func StartChild(argv []string, o ChildOptions) (*Child, error) {
	if len(argv) == 0 {
		return nil, errors.New("runner: no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	cmd.Env = o.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c := &Child{cmd: cmd, done: make(chan struct{})}
	if o.Foreground && o.Stdin != nil {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = int(o.Stdin.Fd())
		c.foreground, c.tty = true, o.Stdin
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	c.pgid = cmd.Process.Pid
	go func() {
		err := cmd.Wait()
		c.state = cmd.ProcessState
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			c.err = err
		}
		c.restoreTerminal()
		close(c.done)
	}()
	return c, nil
}

// StartExitCode returns the exit code for a StartChild error: 127 when the
// command was not found, 126 when it could not be run.
func StartExitCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return ExitNotFound
	}
	return ExitCannotInvoke
}

// restoreTerminal gives the terminal back to this process's group after a
// foreground command exits.
func (c *Child) restoreTerminal() {
	if !c.foreground {
		return
	}
	// A background process group that sets the terminal's foreground group
	// is sent SIGTTOU unless it ignores it.
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(int(c.tty.Fd()), unix.TIOCSPGRP, unix.Getpgrp())
}

// PID returns the command's PID, which is also its process group ID.
func (c *Child) PID() int { return c.pgid }

// Done is closed when the command has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// State returns the command's exit state once Done is closed (nil before,
// or when waiting failed), and the error of waiting for it.
func (c *Child) State() (*os.ProcessState, error) {
	select {
	case <-c.done:
		return c.state, c.err
	default:
		return nil, errors.New("runner: command still running")
	}
}

// Signal sends sig to the command's process group. A group that no longer
// exists is not an error.
func (c *Child) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-c.pgid, sig)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group %d: %w", c.pgid, err)
	}
	return nil
}

// groupAlive reports whether any process (zombies included) is left in the
// command's process group.
func (c *Child) groupAlive() bool {
	return syscall.Kill(-c.pgid, 0) == nil
}

// Stop sends SIGTERM to the command's process group, waits up to grace for
// the command and every process of its group to exit, then sends SIGKILL to
// the group, and returns once the command has exited. Only the first call
// stops; later ones return at once.
func (c *Child) Stop(grace time.Duration) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return
	}
	c.stopping = true
	c.mu.Unlock()

	_ = c.Signal(syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-deadline.C:
			_ = c.Signal(syscall.SIGKILL)
			<-c.done
			return
		case <-poll.C:
			select {
			case <-c.done:
				if !c.groupAlive() {
					return
				}
			default:
			}
		}
	}
}

// Stopping reports whether Stop was called.
func (c *Child) Stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// ExitStatus returns the exit code to pass on for a finished command: its
// own exit code, or 128 + the signal number when a signal killed it, and the
// signal's name in that case.
func ExitStatus(ps *os.ProcessState) (code int, sig string) {
	if ps == nil {
		return ExitFailure, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	return ps.ExitCode(), ""
}
