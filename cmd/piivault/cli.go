package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"piivault/vault"
)

// The command line, one cobra.Command per command: its usage, its flags and
// its arguments are declared here, and its RunE calls the command's
// function (commands.go, compliance_cmds.go, serve.go) with them parsed.
//
// The contract this file keeps (cli_test.go holds it):
//   - `--help`, `-h` and `help [command]` answer every command with its
//     usage and flags and exit 0 before anything reads the environment or
//     connects: cobra answers help before RunE, no command has a pre-run
//     hook, and every argument check is a cobra.PositionalArgs that only
//     looks at the arguments.
//   - An error is returned, never printed here: main prints it as one line
//     (SilenceErrors), with no usage after it (SilenceUsage); a bad flag,
//     a missing or extra argument, an unknown command or subcommand are
//     errors like any other.

// Groups of the root's help: which environment a command needs.
const (
	groupServer   = "server"
	groupService  = "service"
	groupOperator = "operator"
	groupOther    = "other"
)

// newRootCmd builds the command tree for one run; the commands act on e.
func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "piivault <command> [arguments]",
		Short: "a short-lived vault for e-commerce shipping PII",
		// Runnable, so that cobra hands an unknown command to RunE (a
		// non-runnable root would print its help and exit 0); no command
		// prints help.
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return c.Help()
			}
			return unknownCommand(c, args[0])
		},
		SilenceErrors:         true,
		SilenceUsage:          true,
		DisableFlagsInUseLine: true,
		CompletionOptions:     cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetHelpFunc(printHelp)
	root.SetUsageFunc(func(c *cobra.Command) error { printHelp(c, nil); return nil })
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if !c.HasParent() {
			return err
		}
		return fmt.Errorf("%s: %w", commandPath(c), err)
	})
	root.AddGroup(
		&cobra.Group{ID: groupServer, Title: "Server:"},
		&cobra.Group{ID: groupService, Title: "Service (environment as for serve):"},
		&cobra.Group{ID: groupOperator, Title: "Operator (VAULT_ADDR and VAULT_TOKEN of a Vault operator):"},
		&cobra.Group{ID: groupOther, Title: "Other:"},
	)
	root.SetHelpCommand(helpCmd())
	root.SetHelpCommandGroupID(groupOther)

	server := serveCmd(e)
	server.GroupID = groupServer
	root.AddCommand(server)

	service := func(cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = groupService
			root.AddCommand(c)
		}
	}
	service(
		leaf("purge", "run one retention sweep now and print the count", noArgs,
			func(c *cobra.Command, _ []string) error { return cmdPurge(c.Context(), e) }),
		group("keys", "transit key life cycle",
			leaf("rotate", "rotate the transit key and retire versions past retention", noArgs,
				func(c *cobra.Command, _ []string) error { return cmdKeysRotate(c.Context(), e) })),
		group("audit", "the audit trail",
			leaf("verify", "check the audit trail's hash chain, archived segments included", noArgs,
				func(c *cobra.Command, _ []string) error { return cmdAuditVerify(c.Context(), e) }),
			leaf("archive", "move entries older than PIIVAULT_AUDIT_HOT to sealed segments now", noArgs,
				func(c *cobra.Command, _ []string) error { return cmdAuditArchive(c.Context(), e) })),
		group("clients", "storefront API keys", clientsAddCmd(e),
			leaf("revoke NAME", "revoke a storefront API key at once", oneArg("NAME"),
				func(c *cobra.Command, args []string) error { return cmdClientsRevoke(c.Context(), e, args[0]) }),
			leaf("list", "list storefront clients and their checkout origins", noArgs,
				func(c *cobra.Command, _ []string) error { return cmdClientsList(c.Context(), e) })),
		group("blocks", "IP blocks made by the intrusion monitor",
			withJSON(leaf("list [--json]", "IPs the intrusion monitor blocked, with when each block ends", noArgs, nil),
				func(c *cobra.Command, asJSON bool) error { return cmdBlocksList(c.Context(), e, asJSON) }),
			leaf("lift IP", "lift a block now (no admin login needed)", oneArg("IP"),
				func(c *cobra.Command, args []string) error { return cmdBlocksLift(c.Context(), e, args[0]) })),
		lockdownCmd(e),
		group("report", "compliance reports",
			withJSON(leaf("retention [--json]", "proof of retention: held PII by age, outlived orders, purges, keys", noArgs, nil),
				func(c *cobra.Command, asJSON bool) error { return cmdReportRetention(c.Context(), e, asJSON) })),
		group("export", "exports without PII",
			leaf("refs", "purchase references and the audit trail as JSON lines (no PII)", noArgs,
				func(c *cobra.Command, _ []string) error { return cmdExportRefs(c.Context(), e) })),
	)

	operator := func(cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = groupOperator
			root.AddCommand(c)
		}
	}
	operator(
		setupCmd(e),
		group("staff", "staff accounts in Vault", staffAddCmd(e),
			leaf("remove NAME", "delete a staff account and revoke its tokens at once", oneArg("NAME"),
				func(c *cobra.Command, args []string) error { return cmdStaffRemove(c.Context(), e, args[0]) }),
			withJSON(leaf("list [--json]", "list staff accounts, their roles and when they were made", noArgs, nil),
				func(c *cobra.Command, asJSON bool) error { return cmdStaffList(c.Context(), e, asJSON) }),
			leaf("unsuspend NAME", "lift a suspension made by the intrusion monitor", oneArg("NAME"),
				func(c *cobra.Command, args []string) error { return cmdStaffUnsuspend(c.Context(), e, args[0]) }),
			leaf("unlock NAME", "lift Vault's userpass lockout of NAME", oneArg("NAME"),
				func(c *cobra.Command, args []string) error { return cmdStaffUnlock(c.Context(), e, args[0]) })),
	)

	for _, c := range []*cobra.Command{versionCmd(e), completionCmd(root)} {
		c.GroupID = groupOther
		root.AddCommand(c)
	}
	return root
}

// The environment each group of commands needs, for their help.
const (
	serverEnv = "Environment: the configuration variables of the README's Configuration section: " +
		"VAULT_ADDR; PIIVAULT_VAULT_ROLE_ID and PIIVAULT_VAULT_SECRET_ID (or VAULT_TOKEN); " +
		"REDIS_URL; PIIVAULT_LISTEN; the webhook secrets; ... A bad value stops start-up with " +
		"one line naming the variable. A secret variable may instead name a file in NAME_FILE."
	serviceEnv = "Environment: as for serve (VAULT_ADDR; PIIVAULT_VAULT_ROLE_ID and " +
		"PIIVAULT_VAULT_SECRET_ID, or VAULT_TOKEN; REDIS_URL; ...). A secret variable may " +
		"instead name a file in NAME_FILE."
	operatorEnv = "Environment: VAULT_ADDR and VAULT_TOKEN (or VAULT_TOKEN_FILE) of a Vault " +
		"operator. The staff commands that change an account also need REDIS_URL, for the " +
		"change's audit entry."
)

func serveCmd(e *env) *cobra.Command {
	c := leaf("serve", "run the API, webhooks and purge scheduler", noArgs,
		func(c *cobra.Command, _ []string) error { return cmdServe(c.Context(), e) })
	c.Long = "Run the API, the webhooks, the staff console and the purge scheduler until " +
		"SIGINT or SIGTERM, then finish in-flight requests (up to 20s). The log is JSON " +
		"lines on stdout."
	return c
}

func setupCmd(e *env) *cobra.Command {
	var o setupOptions
	c := leaf("setup [--approle-env] [--bind-cidrs CIDRs] [--audit-file PATH]", "bootstrap Vault for piivault (idempotent)", noArgs,
		func(c *cobra.Command, _ []string) error { return cmdSetup(c.Context(), e, o) })
	c.Long = "Bootstrap Vault for piivault, idempotently: the transit mount and keys, the " +
		"policies piivault-service, -fulfillment, -support, -admin and -auditor, userpass, " +
		"the staff password policy, the TOTP MFA method and the service AppRole."
	f := c.Flags()
	f.BoolVar(&o.approleEnv, "approle-env", false, "also print PIIVAULT_VAULT_ROLE_ID/SECRET_ID for serve, as env lines (the only stdout)")
	f.StringVar(&o.bindCIDRs, "bind-cidrs", "", "comma-separated `CIDRs` the service AppRole may be used from (e.g. 10.0.4.0/24)")
	f.StringVar(&o.auditFile, "audit-file", "", "enable Vault's file audit device writing to `PATH` (on the Vault server)")
	return c
}

func staffAddCmd(e *env) *cobra.Command {
	var o staffAddOptions
	c := leaf("add NAME --role R [--json] [--password-stdin]",
		"make a staff account; its initial password and TOTP URL are shown once", oneArg("NAME"),
		func(c *cobra.Command, args []string) error { return cmdStaffAdd(c.Context(), e, args[0], o) })
	f := c.Flags()
	f.StringVar(&o.role, "role", "", "the member's role `R`: fulfillment, support, admin or auditor")
	f.BoolVar(&o.asJSON, "json", false, `print {"username","role","password","totp_url"} as the only stdout`)
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "read the initial password from stdin instead of generating one")
	_ = c.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(vault.Roles, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func clientsAddCmd(e *env) *cobra.Command {
	var o clientsAddOptions
	c := leaf("add NAME [--origin URL]... [--json]",
		"make a storefront API key (shown once); with --origin, also a browser checkout key", oneArg("NAME"),
		func(c *cobra.Command, args []string) error { return cmdClientsAdd(c.Context(), e, args[0], o) })
	f := c.Flags()
	c.Long = "Make a storefront API key, shown once (keep it secret). With --origin, also a " +
		"publishable key for the browser checkout (checkout.js) on those origins: it is not a " +
		"secret, it goes in the page."
	f.StringArrayVar(&o.origins, "origin", nil, "an origin (`URL`) the browser checkout runs on, repeat for more; mints a publishable key")
	f.BoolVar(&o.asJSON, "json", false, `print {"name","api_key"} (with --origin also "publishable_key","origins") as the only stdout`)
	return c
}

func lockdownCmd(e *env) *cobra.Command {
	actions := []string{"on", "off", "status"}
	c := leaf("lockdown on|off|status", "incident lockdown: refuse reveals and logins, revoke every staff token",
		oneOf("on, off or status", actions...),
		func(c *cobra.Command, args []string) error { return cmdLockdown(c.Context(), e, args[0]) })
	c.Long = "Incident lockdown. on: every staff token is revoked and reveals and staff logins " +
		"are refused (423) until off; ingest and purges go on. off: lift it (no staff can " +
		"log in while it is on, so this is the way out). status: say which."
	c.ValidArgs = actions
	return c
}

func versionCmd(e *env) *cobra.Command {
	c := withJSON(leaf("version [--json]", "print the version, the Go version and the commit", noArgs, nil),
		func(_ *cobra.Command, asJSON bool) error { return printVersion(e.stdout, asJSON) })
	c.Flags().Lookup("json").Usage = `print {"version","go_version","commit"}`
	c.Long = "Print piivault's version, the Go version it was built with and the commit it " +
		"was built from (\"unknown\" when the build carries none). Needs no environment."
	return c
}

// completionCmd prints the completion script of root for a shell.
func completionCmd(root *cobra.Command) *cobra.Command {
	shells := []string{"bash", "zsh", "fish"}
	c := leaf("completion bash|zsh|fish", "print a shell completion script", oneOf("bash, zsh or fish", shells...),
		func(c *cobra.Command, args []string) error {
			w := c.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			}
			return root.GenFishCompletion(w, true)
		})
	c.Long = "Print a completion script for bash, zsh or fish. For example:\n" +
		"  bash: source <(piivault completion bash)\n" +
		"  zsh:  piivault completion zsh > \"${fpath[1]}/_piivault\"\n" +
		"  fish: piivault completion fish > ~/.config/fish/completions/piivault.fish\n" +
		"Needs no environment."
	c.ValidArgs = shells
	return c
}

// helpCmd is `help [command]`: the help of a command, as `--help` gives
// it; an unknown command is an error, not the root's help.
func helpCmd() *cobra.Command {
	return &cobra.Command{
		Use:                   "help [command]",
		Short:                 "print a command's usage and flags",
		DisableFlagsInUseLine: true,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range target.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil {
				return fmt.Errorf("help: %w", err)
			}
			if len(rest) > 0 {
				return fmt.Errorf("help: no command %q (see piivault help)", strings.Join(args, " "))
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	}
}

// leaf is a command that does one thing. The usage line is use (the
// command's name and its arguments, flags included), so DisableFlagsInUseLine.
func leaf(use, short string, args cobra.PositionalArgs, run func(*cobra.Command, []string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: run, DisableFlagsInUseLine: true}
}

// withJSON gives c a --json flag and runs run with it.
func withJSON(c *cobra.Command, run func(c *cobra.Command, asJSON bool) error) *cobra.Command {
	var asJSON bool
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.RunE = func(c *cobra.Command, _ []string) error { return run(c, asJSON) }
	return c
}

// group is a command that only holds subcommands. Run without one, or
// with one it does not have, it is an error naming them.
func group(name, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:                   name + " <command>",
		Short:                 short,
		Args:                  cobra.ArbitraryArgs, // checked in RunE, which names the subcommands
		DisableFlagsInUseLine: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("%s: want %s", commandPath(c), orList(subcommandNames(c)))
			}
			return unknownCommand(c, args[0])
		},
	}
	c.AddCommand(subs...)
	return c
}

// noArgs refuses any argument.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s: unexpected argument %q", commandPath(c), args[0])
	}
	return nil
}

// oneArg wants exactly one argument, named what in the error.
func oneArg(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) == 0 || args[0] == "":
			return fmt.Errorf("%s: missing %s", commandPath(c), what)
		case len(args) > 1:
			return fmt.Errorf("%s: unexpected argument %q", commandPath(c), args[1])
		}
		return nil
	}
}

// oneOf wants exactly one argument among choices (described by want).
func oneOf(want string, choices ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("%s: want %s", commandPath(c), want)
		case !slices.Contains(choices, args[0]):
			return fmt.Errorf("%s: unknown argument %q (want %s)", commandPath(c), args[0], want)
		case len(args) > 1:
			return fmt.Errorf("%s: unexpected argument %q", commandPath(c), args[1])
		}
		return nil
	}
}

// unknownCommand is the error for a command c does not have, with cobra's
// suggestion when one is close.
func unknownCommand(c *cobra.Command, name string) error {
	where := "unknown command"
	if c.HasParent() {
		where = commandPath(c) + ": unknown subcommand"
	}
	hint := ""
	c.SuggestionsMinimumDistance = 2
	if s := c.SuggestionsFor(name); len(s) > 0 {
		hint = "did you mean " + strings.Join(s, " or ") + "? "
	}
	return fmt.Errorf("%s %q (%ssee %s --help)", where, name, hint, c.CommandPath())
}

// commandPath is c's path without the program's name ("staff add").
func commandPath(c *cobra.Command) string {
	if !c.HasParent() {
		return c.Name()
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}

func subcommandNames(c *cobra.Command) []string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return names
}

// orList is "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// printHelp is every command's help: a usage line naming the command, what
// it does, the environment it needs, then its subcommands or its flags.
// The root's lists every command by the environment it needs.
func printHelp(c *cobra.Command, _ []string) {
	w := c.OutOrStdout()
	if !c.HasParent() {
		printRootHelp(w, c)
		return
	}
	fmt.Fprintf(w, "usage: %s\n\n", c.UseLine())
	if c.Long != "" {
		fmt.Fprint(w, wrap(c.Long))
	} else {
		fmt.Fprint(w, wrap(strings.ToUpper(c.Short[:1])+c.Short[1:]+"."))
	}
	if env := commandEnv(c); env != "" {
		fmt.Fprintf(w, "\n%s", wrap(env))
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				printEntry(w, s.Use, s.Short)
			}
		}
		fmt.Fprintf(w, "\nRun `%s <command> --help` for a command's usage and flags.\n", c.CommandPath())
		return
	}
	c.InitDefaultHelpFlag()
	fmt.Fprintf(w, "\nFlags:\n%s", c.LocalFlags().FlagUsages())
}

// commandEnv is the environment c needs, by the group of its top-level
// command.
func commandEnv(c *cobra.Command) string {
	top := c
	for top.HasParent() && top.Parent().HasParent() {
		top = top.Parent()
	}
	switch top.GroupID {
	case groupServer:
		return serverEnv
	case groupService:
		return serviceEnv
	case groupOperator:
		return operatorEnv
	}
	return ""
}

func printRootHelp(w io.Writer, root *cobra.Command) {
	fmt.Fprintf(w, "usage: %s\n\npiivault is %s.\n", root.UseLine(), root.Short)
	for _, g := range root.Groups() {
		fmt.Fprintf(w, "\n%s\n", g.Title)
		for _, c := range root.Commands() {
			if c.GroupID != g.ID || (!c.IsAvailableCommand() && c.Name() != "help") {
				continue
			}
			if !c.HasAvailableSubCommands() {
				printEntry(w, c.Use, c.Short)
				continue
			}
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					printEntry(w, c.Name()+" "+s.Use, s.Short)
				}
			}
		}
	}
	fmt.Fprintf(w, "\nA secret variable (VAULT_TOKEN, PIIVAULT_VAULT_SECRET_ID, EASYPOST_API_KEY, every *_SECRET)\n"+
		"may instead name a file in NAME_FILE.\n")
	fmt.Fprintf(w, "\nRun `piivault <command> --help` for a command's usage and flags.\n")
}

// wrap breaks text's lines at 80 columns; a line that starts with a
// space (an example) is kept as it is.
func wrap(text string) string {
	const width = 80
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, " ") {
			b.WriteString(line + "\n")
			continue
		}
		n := 0
		for i, word := range strings.Fields(line) {
			if i > 0 && n+1+len(word) > width {
				b.WriteString("\n")
				n = 0
			} else if i > 0 {
				b.WriteString(" ")
				n++
			}
			b.WriteString(word)
			n += len(word)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// printEntry prints one line of a command list, the description on the
// next line when the usage is long.
func printEntry(w io.Writer, use, short string) {
	const width = 30
	if len(use) < width {
		fmt.Fprintf(w, "  %-*s%s\n", width, use, short)
		return
	}
	fmt.Fprintf(w, "  %s\n  %-*s%s\n", use, width, "", short)
}

// singleDashFlags rewrites -name and -name=value as --name and
// --name=value when name is a long flag of a command in root's tree:
// piivault parsed its flags with Go's flag package before cobra, which
// takes both forms, and scripts may use either. Arguments after "--" and
// anything else are left alone.
func singleDashFlags(root *cobra.Command, args []string) []string {
	long := map[string]bool{"help": true}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { long[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 && long[name] {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}
