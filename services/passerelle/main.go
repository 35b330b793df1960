// Command passerelle runs Passerelle: every service in one process (run), or
// one service alone (serve), and the operator's commands (migrate, dev token,
// dlq, audit verify, directory import, version). docs/contract.md, "Commands", is its manual.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `passerelle — parcours ville-hôpital

Usage:
  passerelle [run] [--demo] [flags]   every service in one process (the default)
  passerelle serve <service> [flags]  one service alone: %s
  passerelle migrate [flags]          apply database migrations and exit
  passerelle dev token <user|client>  print a development access token
  passerelle dlq list                 list dead-lettered events
  passerelle dlq replay <id|--all>    replay dead-lettered events
  passerelle audit verify [--expect <seq>:<hash>]
                                      check the audit trail's hash chain
  passerelle directory import [--dry-run] <file.csv|bundle.json>
                                      import members into the directory
  passerelle version                  version, commit, Go version

Every flag is also an environment variable (see "passerelle run -h").
`

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the command line args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, "", args, stderr)
	case "serve":
		if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
			err = fmt.Errorf("serve: name a service: %s", serviceNames())
			break
		}
		err = cmdRun(ctx, args[0], args[1:], stderr)
	case "migrate":
		err = cmdMigrate(ctx, args, stdout, stderr)
	case "dev":
		err = cmdDev(args, stdout, stderr)
	case "dlq":
		err = cmdDLQ(ctx, args, stdout, stderr)
	case "audit":
		err = cmdAudit(ctx, args, stdout, stderr)
	case "outcomes":
		err = cmdOutcomes(ctx, args, stdout, stderr)
	case "directory":
		err = cmdDirectory(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, usage, serviceNames())
	default:
		err = fmt.Errorf("unknown command %q\n\n"+usage, cmd, serviceNames())
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errReported) {
			return 1
		}
		fmt.Fprintln(stderr, "passerelle:", err)
		return 1
	}
	return 0
}

func versionString() string {
	commit, modified := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	return fmt.Sprintf("passerelle %s, commit %s%s, %s", version, commit, modified, runtime.Version())
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func loadConfig(name string, args []string, stderr io.Writer) (Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return LoadConfig(fs, args, os.LookupEnv)
}
