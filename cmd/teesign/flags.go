package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// usageError is a command line that cobra's flag, argument, required-flag
// or flag-group validation refused: exit code 2. Every other failure is
// exit code 1.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exitError carries an exit code out of a command, with an optional
// message (verify's "invalid" is exit 1 after its JSON result).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// markUsage makes every validation cobra does on the command line of root
// and its subcommands return a *usageError: flag parsing (including the
// typed flag values below), positional arguments, required flags and flag
// groups.
func markUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if err := c.ValidateRequiredFlags(); err != nil {
			return &usageError{err}
		}
		if err := c.ValidateFlagGroups(); err != nil {
			return &usageError{err}
		}
		return nil
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		args := c.Args
		if args == nil {
			args = cobra.NoArgs
		}
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return &usageError{err}
			}
			return nil
		}
		if !c.Runnable() {
			// A command of subcommands: its arguments are checked (an
			// unknown subcommand is a usage error) and alone it shows help.
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// exitCode maps a command's error to the process's exit code.
func exitCode(err error) int {
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	if _, ok := err.(*usageError); ok {
		return 2
	}
	return 1
}

// enumValue is a string flag that accepts only listed values.
type enumValue struct {
	v       *string
	allowed []string
}

func newEnum(p *string, def string, allowed ...string) *enumValue {
	*p = def
	return &enumValue{v: p, allowed: allowed}
}

func (e *enumValue) String() string { return *e.v }
func (e *enumValue) Type() string   { return "string" }
func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.allowed, s) {
		return fmt.Errorf("%q is not one of %s", s, strings.Join(e.allowed, ", "))
	}
	*e.v = s
	return nil
}

// timeValue is an RFC 3339 time flag.
type timeValue struct{ t *time.Time }

func (v timeValue) String() string {
	if v.t.IsZero() {
		return ""
	}
	return v.t.Format(time.RFC3339)
}
func (v timeValue) Type() string { return "RFC3339" }
func (v timeValue) Set(s string) error {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2025-06-01T00:00:00Z: %w", err)
	}
	*v.t = t
	return nil
}

// prefixesValue is a repeatable CIDR flag.
type prefixesValue struct{ p *[]netip.Prefix }

func (v prefixesValue) String() string {
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
func (v prefixesValue) Type() string { return "CIDR" }
func (v prefixesValue) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("want a CIDR like 172.17.0.0/16: %w", err)
	}
	*v.p = append(*v.p, p.Masked())
	return nil
}

// levelValue is a log level flag.
type levelValue struct{ l *slog.Level }

func (v levelValue) String() string { return strings.ToLower(v.l.String()) }
func (v levelValue) Type() string   { return "level" }
func (v levelValue) Set(s string) error {
	return v.l.UnmarshalText([]byte(s))
}
