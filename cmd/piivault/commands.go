package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/clients"
	"piivault/internal/apperr"
	"piivault/internal/replication"
	"piivault/staff"
	"piivault/vault"
)

// parse parses flags that may stand before and after one positional NAME
// and refuses anything left over. The commands no longer use it (cobra
// parses their flags, see cli.go); it stays while
// TestParseTakesFlagsAroundTheName in config_test.go tests it, and goes
// with that test.
func parse(fs *flag.FlagSet, args []string, wantName bool) (string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	name := ""
	if wantName && fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", err
		}
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if wantName && name == "" {
		return "", errors.New("missing NAME")
	}
	return name, nil
}

// operator connects to Vault with the operator's VAULT_TOKEN.
func (e *env) operator(ctx context.Context) (*vault.Operator, *config, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, nil, err
	}
	if cfg.VaultToken == "" {
		return nil, nil, &configError{"VAULT_TOKEN", "this command needs a Vault operator token"}
	}
	vc, err := vault.NewOperator(ctx, cfg.vaultConfig(), e.log)
	return vc, cfg, err
}

// serviceAuditLog is the set-up of the commands that act as the service
// without its whole graph and keep the audit trail: with cfg, the service's
// Vault identity (AppRole, else VAULT_TOKEN) to seal and verify entries,
// and Redis. The caller closes the Redis client.
func (e *env) serviceAuditLog(ctx context.Context, cfg *config) (*audit.Log, redis.UniversalClient, error) {
	if err := cfg.needVault(); err != nil {
		return nil, nil, err
	}
	vc, err := vault.New(ctx, cfg.vaultConfig(), e.log)
	if err != nil {
		return nil, nil, err
	}
	return e.auditLog(ctx, cfg, vc)
}

// auditLog connects to Redis for commands that record operator actions;
// vc (the caller's Vault client) seals the entries and anchors the trail.
func (e *env) auditLog(ctx context.Context, cfg *config, vc *vault.Client) (*audit.Log, redis.UniversalClient, error) {
	rdb := cfg.redisClient(16)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("redis at REDIS_URL is unavailable (the change would go unaudited): %w", err)
	}
	return newAuditLog(rdb, vc, replication.New(rdb, cfg.RedisWait, 0), cfg.AuditArchive), rdb, nil
}

// record appends an operator action to the trail and moves the anchor in
// Vault up to it before the command exits.
func (e *env) record(ctx context.Context, l *audit.Log, en audit.Entry) error {
	if err := l.Record(ctx, en); err != nil {
		return err
	}
	if err := l.Anchor(ctx); err != nil {
		e.log.Warn("audit anchor not advanced", "err", err)
	}
	return nil
}

// setupOptions are setup's flags.
type setupOptions struct {
	approleEnv bool
	bindCIDRs  string
	auditFile  string
}

func cmdSetup(ctx context.Context, e *env, o setupOptions) error {
	cidrs := splitList(o.bindCIDRs)
	for _, c := range cidrs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("setup: --bind-cidrs: %q is not a CIDR", c)
		}
	}
	vc, _, err := e.operator(ctx)
	if err != nil {
		return err
	}
	report, err := vc.Setup(ctx, vault.SetupOptions{BindCIDRs: cidrs, AuditFile: o.auditFile})
	out := e.stdout
	if o.approleEnv {
		out = e.stderr // stdout carries only the env lines
	}
	for _, s := range report.Steps {
		fmt.Fprintln(out, s)
	}
	if err != nil {
		return err
	}
	if o.approleEnv {
		role, sec, err := vc.AppRoleCredentials(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "PIIVAULT_VAULT_ROLE_ID=%s\nPIIVAULT_VAULT_SECRET_ID=%s\n", role, sec)
	}
	return nil
}

// staffAddOptions are `staff add`'s flags.
type staffAddOptions struct {
	role          string
	asJSON        bool
	passwordStdin bool
}

func cmdStaffAdd(ctx context.Context, e *env, name string, o staffAddOptions) error {
	if !staff.ValidUsername(name) {
		return errors.New("staff add: NAME must be 2-32 of a-z 0-9 . _ - starting with a letter")
	}
	if !staff.ValidRole(o.role) {
		return errors.New("staff add: --role must be fulfillment, support, admin or auditor")
	}
	vc, cfg, err := e.operator(ctx)
	if err != nil {
		return err
	}
	var password string
	if o.passwordStdin {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("staff add: read password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	} else if password, err = vc.GeneratePassword(ctx); err != nil {
		return err
	}
	if err := staff.CheckPassword(password); err != nil {
		return fmt.Errorf("staff add: %s", err.(*apperr.Error).Message)
	}
	log, rdb, err := e.auditLog(ctx, cfg, vc.Client())
	if err != nil {
		return err
	}
	defer rdb.Close()
	enr, err := vc.CreateStaff(ctx, name, o.role, password)
	if err != nil {
		return fmt.Errorf("staff add: %w", err)
	}
	if err := e.record(ctx, log, audit.Entry{Actor: "operator", Action: audit.ActionStaffAdd,
		Detail: map[string]string{"staff": name, "role": o.role}}); err != nil {
		return fmt.Errorf("staff add: created, but not audited: %w", err)
	}
	if o.asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]string{
			"username": name, "role": o.role, "password": password, "totp_url": enr.TOTPURL})
	}
	fmt.Fprintf(e.stdout, "Staff member %s (%s) created.\n", name, o.role)
	if !o.passwordStdin {
		fmt.Fprintf(e.stdout, "Initial password (shown once): %s\n", password)
	}
	fmt.Fprintf(e.stdout, "Enrol this TOTP URL in an authenticator app (shown once):\n%s\n", enr.TOTPURL)
	return nil
}

func cmdStaffRemove(ctx context.Context, e *env, name string) error {
	return e.staffChange(ctx, "staff remove", "removed", audit.ActionStaffRemove, name,
		func(vc *vault.Operator, rdb redis.UniversalClient) error {
			if err := vc.RemoveStaff(ctx, name); err != nil {
				return err
			}
			_ = staff.NewService(vc.Client(), rdb).ForgetSuspension(ctx, name)
			return nil
		}, "Staff member %s removed; every token they held is revoked.\n")
}

// staffChange is an operator's change to a staff member: do it as the
// Vault operator, then record action on name in the trail (done names the
// change in the error when only the record failed) and say so on stdout.
func (e *env) staffChange(ctx context.Context, cmd, done, action, name string,
	do func(*vault.Operator, redis.UniversalClient) error, said string) error {
	vc, cfg, err := e.operator(ctx)
	if err != nil {
		return err
	}
	log, rdb, err := e.auditLog(ctx, cfg, vc.Client())
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := do(vc, rdb); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if err := e.record(ctx, log, audit.Entry{Actor: "operator", Action: action,
		Detail: map[string]string{"staff": name}}); err != nil {
		return fmt.Errorf("%s: %s, but not audited: %w", cmd, done, err)
	}
	fmt.Fprintf(e.stdout, said, name)
	return nil
}

func cmdStaffList(ctx context.Context, e *env, asJSON bool) error {
	vc, _, err := e.operator(ctx)
	if err != nil {
		return err
	}
	members, err := vc.ListStaff(ctx)
	if err != nil {
		return fmt.Errorf("staff list: %w", err)
	}
	if asJSON {
		if members == nil {
			members = []vault.StaffMember{}
		}
		return json.NewEncoder(e.stdout).Encode(members)
	}
	fmt.Fprintf(e.stdout, "%-24s %-12s %s\n", "USERNAME", "ROLE", "CREATED")
	for _, m := range members {
		created := "-"
		if !m.Created.IsZero() {
			created = m.Created.Format(time.RFC3339)
		}
		fmt.Fprintf(e.stdout, "%-24s %-12s %s\n", m.Name, m.Role, created)
	}
	return nil
}

func cmdStaffUnlock(ctx context.Context, e *env, name string) error {
	return e.staffChange(ctx, "staff unlock", "lifted", audit.ActionStaffUnlock, name,
		func(vc *vault.Operator, _ redis.UniversalClient) error { return userErr(vc.UnlockStaff(ctx, name)) },
		"Vault's lockout of %s lifted.\n")
}

func cmdStaffUnsuspend(ctx context.Context, e *env, name string) error {
	return e.staffChange(ctx, "staff unsuspend", "lifted", audit.ActionStaffUnsuspend, name,
		func(vc *vault.Operator, rdb redis.UniversalClient) error {
			return userErr(staff.NewService(vc.Client(), rdb).Unsuspend(ctx, name))
		}, "Suspension of %s lifted.\n")
}

// clientsAddOptions are `clients add`'s flags.
type clientsAddOptions struct {
	origins []string
	asJSON  bool
}

func cmdClientsAdd(ctx context.Context, e *env, name string, o clientsAddOptions) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	log, rdb, err := e.serviceAuditLog(ctx, cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := clients.NewRegistry(rdb)
	keys, err := reg.AddWithOrigins(ctx, name, o.origins)
	if err != nil {
		return fmt.Errorf("clients add: %w", userErr(err))
	}
	key := keys.APIKey
	if err := e.record(ctx, log, audit.Entry{Actor: "operator", Action: audit.ActionClientAdd,
		Detail: map[string]string{"client": name}}); err != nil {
		_ = reg.Revoke(ctx, name)
		return fmt.Errorf("clients add: not audited, key withdrawn: %w", err)
	}
	if o.asJSON {
		out := map[string]any{"name": name, "api_key": key}
		if keys.PublishableKey != "" {
			out["publishable_key"], out["origins"] = keys.PublishableKey, o.origins
		}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	fmt.Fprintf(e.stdout, "Client %s created. API key (shown once, keep it secret):\n%s\n", name, key)
	if keys.PublishableKey != "" {
		fmt.Fprintf(e.stdout, "Publishable key for the browser checkout on %s (not a secret):\n%s\n",
			strings.Join(o.origins, ", "), keys.PublishableKey)
	}
	return nil
}

func cmdClientsRevoke(ctx context.Context, e *env, name string) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	log, rdb, err := e.serviceAuditLog(ctx, cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := clients.NewRegistry(rdb).Revoke(ctx, name); err != nil {
		return fmt.Errorf("clients revoke: %w", userErr(err))
	}
	if err := e.record(ctx, log, audit.Entry{Actor: "operator", Action: audit.ActionClientRevoke,
		Detail: map[string]string{"client": name}}); err != nil {
		return fmt.Errorf("clients revoke: revoked, but not audited: %w", err)
	}
	fmt.Fprintf(e.stdout, "Client %s revoked.\n", name)
	return nil
}

func cmdClientsList(ctx context.Context, e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	_, rdb, err := e.serviceAuditLog(ctx, cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	cs, err := clients.NewRegistry(rdb).List(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if len(c.Origins) == 0 {
			fmt.Fprintln(e.stdout, c.Name)
			continue
		}
		fmt.Fprintf(e.stdout, "%s  origins: %s\n", c.Name, strings.Join(c.Origins, ", "))
	}
	return nil
}

// userErr shows an apperr's client-safe message rather than its code dump.
func userErr(err error) error {
	var ae *apperr.Error
	if errors.As(err, &ae) && ae.Code != apperr.Internal {
		return errors.New(ae.Message)
	}
	return err
}

func cmdPurge(ctx context.Context, e *env) error {
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	n, err := a.purger.Sweep(ctx)
	fmt.Fprintf(e.stdout, "purged %d orders past retention\n", n)
	return err
}

func cmdKeysRotate(ctx context.Context, e *env) error {
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	reports, err := a.shredder.Run(ctx, true)
	for _, r := range reports {
		fmt.Fprintf(e.stdout, "rotated %s: version %d -> %d; min_decryption_version %d; %d versions retired\n",
			r.Key, r.LatestBefore, r.Latest, r.MinVersion, r.Retired)
	}
	return err
}

func cmdAuditVerify(ctx context.Context, e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	log, rdb, err := e.serviceAuditLog(ctx, cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	v, err := log.Verify(ctx)
	if err != nil {
		return err
	}
	if v.Intact {
		fmt.Fprintf(e.stdout, "audit trail intact: %d entries (%d archived segments)\n", v.Entries, v.Segments)
		if v.Begins != nil {
			fmt.Fprintf(e.stdout, "it begins at entry %d: %s\n", v.Begins.Seq, v.Begins.Reason)
		}
		return nil
	}
	where := "id " + v.Broken.ID
	if v.Broken.Segment != "" {
		where = "archived segment " + v.Broken.Segment
	}
	return fmt.Errorf("audit trail broken at entry %d (%s): %s", v.Broken.Seq, where, v.Broken.Reason)
}

// cmdAuditArchive moves the entries older than PIIVAULT_AUDIT_HOT to sealed
// segments in PIIVAULT_AUDIT_ARCHIVE now, and deletes the segments older
// than PIIVAULT_AUDIT_KEEP (what serve's scheduler does on every sweep).
func cmdAuditArchive(ctx context.Context, e *env) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if cfg.AuditArchive == "" {
		return errors.New("audit archive: PIIVAULT_AUDIT_ARCHIVE is not set (the directory for sealed segments)")
	}
	log, rdb, err := e.serviceAuditLog(ctx, cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	res, deleted, err := log.LifeCycle(ctx, time.Now(), cfg.AuditHot, cfg.AuditKeep)
	if err != nil {
		return fmt.Errorf("audit archive: %w", err)
	}
	fmt.Fprintf(e.stdout, "archived %d entries in %d segments to %s; trimmed %d from Redis; deleted %d segments past PIIVAULT_AUDIT_KEEP\n",
		res.Entries, res.Segments, cfg.AuditArchive, res.Trimmed, deleted)
	return nil
}

// cmdBlocksList and cmdBlocksLift list and lift IP blocks straight in
// Redis, as the service: an operator can always lift a block, with no admin
// login and from any address, even when every admin's IP is the one
// blocked.
func cmdBlocksList(ctx context.Context, e *env, asJSON bool) error {
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	bs, err := a.monitor.Blocks(ctx)
	if err != nil {
		return fmt.Errorf("blocks list: %w", userErr(err))
	}
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(bs)
	}
	fmt.Fprintf(e.stdout, "%-40s %-21s %-21s %s\n", "IP", "BLOCKED", "EXPIRES", "REASON")
	for _, b := range bs {
		fmt.Fprintf(e.stdout, "%-40s %-21s %-21s %s\n", b.IP, b.At.Format(time.RFC3339), b.Expires.Format(time.RFC3339), b.Reason)
	}
	return nil
}

func cmdBlocksLift(ctx context.Context, e *env, ip string) error {
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("blocks lift: %q is not an IP address", ip)
	}
	a, err := e.service(ctx)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.monitor.Unblock(ctx, "operator", ip, ""); err != nil {
		return fmt.Errorf("blocks lift: %w", userErr(err))
	}
	if err := a.audit.Anchor(ctx); err != nil {
		e.log.Warn("audit anchor not advanced", "err", err)
	}
	fmt.Fprintf(e.stdout, "Block of %s lifted.\n", ip)
	return nil
}
