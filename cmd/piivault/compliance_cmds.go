package main

import (
	"context"
	"encoding/json"
	"fmt"

	"piivault/audit"
)

// cmdLockdown: `lockdown on|off|status`, as the service (the lockdown
// revokes staff tokens with the service's Vault identity), recorded as the
// operator's. It is also the way out of a lockdown: no staff can log in
// while it is on. The caller has checked action is one of the three.
func cmdLockdown(ctx context.Context, e *env, action string) error {
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	switch action {
	case "status":
		s, err := a.lockdown.Status(ctx)
		if err != nil {
			return fmt.Errorf("lockdown status: %w", userErr(err))
		}
		if !s.On {
			fmt.Fprintln(e.stdout, "lockdown: off")
			return nil
		}
		fmt.Fprintf(e.stdout, "lockdown: ON since %s (by %s): reveals and staff logins are refused\n",
			s.ChangedAt.Format("2006-01-02 15:04:05Z07:00"), s.By)
		return nil
	case "on", "off":
		on := action == "on"
		_, err := a.lockdown.Set(ctx, on, "operator", "")
		if aerr := a.audit.Anchor(ctx); aerr != nil {
			e.log.Warn("audit anchor not advanced", "err", aerr)
		}
		if err != nil {
			return fmt.Errorf("lockdown %s: %w", action, userErr(err))
		}
		if on {
			fmt.Fprintln(e.stdout, "Lockdown ON: every staff token is revoked; reveals and logins answer 423 until `piivault lockdown off`.")
		} else {
			fmt.Fprintln(e.stdout, "Lockdown lifted: staff can log in again.")
		}
		return nil
	}
	return fmt.Errorf("lockdown: unknown subcommand %q", action)
}

// cmdReportRetention: `report retention [--json]`.
func cmdReportRetention(ctx context.Context, e *env, asJSON bool) error {
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	r, err := a.reports.Retention(ctx)
	if err != nil {
		return fmt.Errorf("report retention: %w", userErr(err))
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(r)
	}
	w := e.stdout
	fmt.Fprintf(w, "Proof of retention, %s (limit %s)\n\n", r.GeneratedAt.Format("2006-01-02 15:04:05Z07:00"), r.Limit)
	fmt.Fprintf(w, "held orders:              %d\n", r.Held)
	fmt.Fprintf(w, "oldest held order:        %s\n", orDash(r.OldestHeldAge))
	fmt.Fprintf(w, "outlived their deadline:  %d\n", r.Outlived)
	fmt.Fprintf(w, "awaiting the next sweep:  %d\n", r.AwaitingSweep)
	chain := "intact"
	if !r.AuditChain.Intact {
		chain = "BROKEN: " + r.AuditChain.Broken.Reason
	}
	fmt.Fprintf(w, "audit chain:              %s (%d entries)\n\n", chain, r.AuditChain.Entries)
	fmt.Fprintln(w, "age of held PII (days)    orders")
	for _, b := range r.AgeHistogram {
		if b.Orders > 0 {
			fmt.Fprintf(w, "  %2d-%-2d                   %d\n", b.FromDay, b.ToDay, b.Orders)
		}
	}
	fmt.Fprintln(w, "\npurges by day and reason")
	for _, d := range r.PurgesByDay {
		fmt.Fprintf(w, "  %s  %v\n", d.Day, d.ByReason)
	}
	fmt.Fprintln(w, "\ntransit keys")
	for _, k := range r.Keys {
		fmt.Fprintf(w, "  %-22s latest v%d, oldest in use v%d, decryptable from v%d, trimmed below v%d\n",
			k.Key, k.LatestVersion, k.OldestInUse, k.MinDecryptionVersion, k.TrimmedBelow)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cmdExportRefs: `export refs` writes the references and the audit trail
// as JSON lines to stdout, and records that it did.
func cmdExportRefs(ctx context.Context, e *env) error {
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	refs, entries, err := a.reports.Export(ctx, e.stdout)
	if err != nil {
		return err
	}
	if err := e.record(ctx, a.audit, audit.Entry{Actor: "operator", Action: audit.ActionExport,
		Detail: map[string]string{"references": fmt.Sprint(refs), "audit_entries": fmt.Sprint(entries)}}); err != nil {
		return fmt.Errorf("export refs: written, but not audited: %w", err)
	}
	e.log.Info("exported", "references", refs, "audit_entries", entries)
	return nil
}
