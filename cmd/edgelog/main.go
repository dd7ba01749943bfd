// Command edgelog runs an edgelog node and talks to a running node's HTTP
// Events API.
//
//	edgelog run                      start a node (data in ./edgelog-data, API on 127.0.0.1:4454)
//	edgelog events publish|query|subscribe|offsets
//	edgelog node id|info
//	edgelog config example           the documented YAML configuration
//	edgelog version
//
// Every command has --help. Exit codes: 0 success, 1 error, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/edgelog/edgelog/api"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default behaviour so that a
		// second Ctrl-C ends a slow shutdown at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct {
	err   error
	quiet bool // the usage was already printed; print nothing more
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// app holds what the commands share: the standard streams and the environment.
type app struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(string) (string, bool)
}

// env returns the value of an environment variable; empty counts as unset.
func (a *app) env(name string) (string, bool) {
	if a.lookupEnv == nil {
		return "", false
	}
	v, ok := a.lookupEnv(name)
	if !ok || v == "" {
		return "", false
	}
	return v, true
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: &lockedWriter{w: stderr}, lookupEnv: os.LookupEnv}
	return a.execute(ctx, args)
}

func (a *app) execute(ctx context.Context, args []string) int {
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if !ue.quiet {
			fmt.Fprintf(a.stderr, "edgelog: %v\nRun '%s --help' for usage.\n", ue.err, cmd.CommandPath())
		}
		return exitUsage
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		if ae.Code != "" {
			fmt.Fprintf(a.stderr, "edgelog: %s: %s\n", ae.Code, ae.Message)
		} else {
			fmt.Fprintf(a.stderr, "edgelog: HTTP %d: %s\n", ae.Status, ae.Message)
		}
		return exitError
	}
	var se *silentError
	if !errors.As(err, &se) {
		fmt.Fprintf(a.stderr, "edgelog: %v\n", err)
	}
	return exitError
}

// silentError is an error already reported on stderr: exit code 1.
type silentError struct{ err error }

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() error { return e.err }

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "edgelog",
		Short: "edgelog: a peer-to-peer event log",
		Long: `edgelog is a peer-to-peer event log. "edgelog run" starts a node; the other
commands talk to a running node's HTTP Events API.

Exit codes: 0 success, 1 error, 2 usage error.`,
		Args:          groupArgs,
		RunE:          groupRun,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.AddCommand(a.runCmd(), a.eventsCmd(), a.nodeCmd(), a.configCmd(), a.swarmCmd(), a.versionCmd())
	return root
}

// groupArgs accepts any arguments on a command that only groups
// subcommands, so that groupRun can report unknown ones as usage errors.
func groupArgs(*cobra.Command, []string) error { return nil }

// groupRun runs a command that only groups subcommands: without arguments it
// prints its help to stderr, with some it reports an unknown command.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		cmd.SetOut(cmd.ErrOrStderr())
		_ = cmd.Help()
		return &usageError{err: errors.New("missing command"), quiet: true}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &usageError{err: errors.New(msg)}
}

// argsUsage wraps an argument validator so that its errors are usage errors.
func argsUsage(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &usageError{err: err}
		}
		return nil
	}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of edgelog",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(a.stdout, "edgelog %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// lockedWriter serialises writes, so that log lines and messages written
// from several goroutines do not interleave within a line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
